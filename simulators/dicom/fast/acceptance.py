"""Association negotiation for the fast acceptor, on pynetdicom's ACSE primitives.

The mirror image of ``negotiation`` (the requestor side): the A-ASSOCIATE-RQ is
decoded by pynetdicom's PDU classes, presentation contexts and SCP/SCU role
selection are settled by pynetdicom's ``negotiate_as_acceptor`` (the same rules a
pynetdicom AE applies), and the AC/RJ PDUs are encoded by pynetdicom. What this
module adds is the *policy*: which abstract syntaxes we serve with which transfer
syntaxes and roles, the called/calling AE checks, and the A-ASSOCIATE-RJ
result/source/reason each refusal must carry (PS3.8 9.3.4, Table 9-21):

==============================================  ======  ======  ======
refusal                                         result  source  reason
==============================================  ======  ======  ======
application context name not supported          1       1       2
calling AE title not recognised (allowlist)     1       1       3
called AE title not recognised                  1       1       7
protocol version not supported                  1       2       2
too many simultaneous associations              2       3       2
==============================================  ======  ======  ======

Kept free of sockets so every case can be checked without a peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom._globals import APPLICATION_CONTEXT_NAME
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE, ImplementationClassUIDNotification, ImplementationVersionNameNotification,
    MaximumLengthNotification, SCP_SCU_RoleSelectionNegotiation, SOPClassExtendedNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.errors import AssociationError, ConfigError

#: A-ASSOCIATE-RJ (result, source, reason) triples, PS3.8 9.3.4.
REJECT_APPLICATION_CONTEXT = (1, 1, 2)
REJECT_CALLING_AE = (1, 1, 3)
REJECT_CALLED_AE = (1, 1, 7)
REJECT_PROTOCOL_VERSION = (1, 2, 2)
REJECT_LOCAL_LIMIT = (2, 3, 2)

#: Answers a requestor's SOP Class Extended Negotiation (PS3.7 D.3.3.5): given the SOP
#: class UID and the service-class-application-information it sent, the information
#: we agree to (echoed in the A-ASSOCIATE-AC), or None to ignore the sub-item.
ExtendedAnswer = Callable[[str, bytes], "bytes | None"]


@dataclass(frozen=True, slots=True)
class SupportedContext:
    """One abstract syntax we serve, the transfer syntaxes we take, and our roles.

    ``scu_role``/``scp_role`` left ``None`` means "no role selection": we are the
    SCP as usual. Set both (e.g. storage classes: ``True, True``) to accept a
    requestor's role selection, as getscu asks for C-GET sub-operations and a
    storage commitment reporter asks for N-EVENT-REPORT on a new association.
    """

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    scu_role: bool | None = None
    scp_role: bool | None = None

    def to_pynetdicom(self) -> PresentationContext:
        context = PresentationContext()
        context.abstract_syntax = UID(self.abstract_syntax)
        context.transfer_syntax = [UID(ts) for ts in self.transfer_syntaxes]
        context.scu_role = self.scu_role
        context.scp_role = self.scp_role
        return context


@dataclass(frozen=True, slots=True)
class AcceptorPolicy:
    """Who may associate with us and what we serve (read once, at server start)."""

    ae_title: str
    contexts: tuple[SupportedContext, ...]
    max_pdu: int
    require_called: bool = True
    allowed_calling: frozenset[str] = field(default_factory=frozenset)
    #: None: extended negotiation is ignored (no sub-item in the AC), as before.
    extended: ExtendedAnswer | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.ae_title.strip()) <= 16:
            raise ConfigError("AE title must be 1 to 16 characters", ae_title=self.ae_title)
        seen = [cx.abstract_syntax for cx in self.contexts]
        if len(seen) != len(set(seen)):
            raise ConfigError("an abstract syntax may be listed only once in the supported table")


@dataclass(slots=True)
class Negotiated:
    """An accepted association: what the AC said and what we need to serve it."""

    calling_ae: str
    called_ae: str
    peer_max_pdu: int
    contexts: dict[int, AcceptedContext]
    #: context ID -> (we may act as SCU, we may act as SCP)
    roles: dict[int, tuple[bool, bool]]
    ac_bytes: bytes
    #: SOP class UID -> the extended negotiation we agreed to (what the AC carries);
    #: a class absent here had none, so its service falls back to its settings.
    extended: dict[str, bytes] = field(default_factory=dict)

    def context_for(self, abstract_syntax: str, transfer_syntax: str | None = None,
                    *, as_scu: bool = False) -> AcceptedContext | None:
        """An accepted context for ``abstract_syntax`` (and syntax) in the wanted role."""
        for context_id, context in self.contexts.items():
            if context.abstract_syntax != abstract_syntax:
                continue
            if transfer_syntax is not None and context.transfer_syntax != transfer_syntax:
                continue
            if as_scu and not self.roles.get(context_id, (False, True))[0]:
                continue
            return context
        return None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused association and the RJ PDU that says why."""

    result: int
    source: int
    reason: int
    rj_bytes: bytes
    calling_ae: str = ""
    called_ae: str = ""


def associate_rj_bytes(result: int, source: int, reason: int) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.result, primitive.result_source, primitive.diagnostic = result, source, reason
    return A_ASSOCIATE_RJ(primitive).encode()


def build_supported(contexts: Iterable[SupportedContext]) -> list[PresentationContext]:
    """The pynetdicom form of the supported table (built once per server)."""
    return [cx.to_pynetdicom() for cx in contexts]


def negotiate(rq: A_ASSOCIATE_RQ, policy: AcceptorPolicy,
              supported: Sequence[PresentationContext]) -> Negotiated | Rejection:
    """Apply ``policy`` to a decoded A-ASSOCIATE-RQ; returns the accept or the reject.

    Raises :class:`AssociationError` when the RQ's items decode but cannot be read
    (pynetdicom's ``to_primitive`` validates them and raises its own types).
    """
    try:
        primitive = rq.to_primitive()
    except Exception as exc:  # noqa: BLE001 - pynetdicom raises many types on bad items
        raise AssociationError("malformed A-ASSOCIATE-RQ items",
                               reason=f"{type(exc).__name__}: {exc}"[:200]) from exc
    calling = str(primitive.calling_ae_title or "").strip()
    called = str(primitive.called_ae_title or "").strip()

    def refuse(triple: tuple[int, int, int]) -> Rejection:
        return Rejection(*triple, associate_rj_bytes(*triple), calling, called)

    if not int(getattr(rq, "protocol_version", 1) or 0) & 0x0001:
        return refuse(REJECT_PROTOCOL_VERSION)
    if str(primitive.application_context_name) != APPLICATION_CONTEXT_NAME:
        return refuse(REJECT_APPLICATION_CONTEXT)
    if policy.require_called and called != policy.ae_title.strip():
        return refuse(REJECT_CALLED_AE)
    if policy.allowed_calling and calling not in {t.strip() for t in policy.allowed_calling}:
        return refuse(REJECT_CALLING_AE)

    requested_roles = {
        str(item.sop_class_uid): (item.scu_role, item.scp_role)
        for item in primitive.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
    results, reply_roles = negotiate_as_acceptor(
        primitive.presentation_context_definition_list, list(supported), requested_roles)
    contexts: dict[int, AcceptedContext] = {}
    roles: dict[int, tuple[bool, bool]] = {}
    for cx in results:
        context_id = int(cx.context_id or 0)
        syntax = str(cx.transfer_syntax[0]) if cx.transfer_syntax else ""
        if cx.result == 0:
            contexts[context_id] = AcceptedContext(context_id, str(cx.abstract_syntax), syntax, 0)
            roles[context_id] = (bool(cx.as_scu), bool(cx.as_scp))

    agreed = _answer_extended(primitive.user_information, policy, contexts.values())

    reply = A_ASSOCIATE()
    reply.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    reply.calling_ae_title = primitive.calling_ae_title
    reply.called_ae_title = primitive.called_ae_title
    reply.result, reply.result_source = 0x00, 0x01
    reply.presentation_context_definition_results_list = results
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = policy.max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    extended_items = []
    for sop_class, info in agreed.items():
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = UID(sop_class)
        item.service_class_application_information = info
        extended_items.append(item)
    reply.user_information = [max_length, implementation, version, *reply_roles,
                              *extended_items]
    return Negotiated(calling, called, int(primitive.maximum_length_received or 0), contexts,
                      roles, A_ASSOCIATE_AC(reply).encode(), agreed)


def _answer_extended(items: Iterable[object], policy: AcceptorPolicy,
                     accepted: Iterable[AcceptedContext]) -> dict[str, bytes]:
    """The extended negotiation we agree to: one answer per accepted SOP class asked.

    PS3.7 D.3.3.5: at most one sub-item per SOP class in the AC, and only for a class
    the requestor asked about; a class we did not accept gets none.
    """
    if policy.extended is None:
        return {}
    classes = {context.abstract_syntax for context in accepted}
    agreed: dict[str, bytes] = {}
    for item in items:
        if not isinstance(item, SOPClassExtendedNegotiation):
            continue
        sop_class = str(item.sop_class_uid or "")
        if sop_class not in classes or sop_class in agreed:
            continue
        answer = policy.extended(sop_class, bytes(item.service_class_application_information or b""))
        if answer is not None:
            agreed[sop_class] = answer
    return agreed


__all__ = ["SupportedContext", "ExtendedAnswer", "AcceptorPolicy", "Negotiated", "Rejection", "negotiate",
           "build_supported", "associate_rj_bytes", "REJECT_APPLICATION_CONTEXT",
           "REJECT_CALLING_AE", "REJECT_CALLED_AE", "REJECT_PROTOCOL_VERSION",
           "REJECT_LOCAL_LIMIT"]
