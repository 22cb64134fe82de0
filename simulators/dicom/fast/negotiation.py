"""Association negotiation for the fast client, on pynetdicom's ACSE primitives.

Builds the A-ASSOCIATE-RQ the way pynetdicom's ``ACSE.send_request`` does
(application context, AE titles, presentation contexts, maximum length and
implementation UID/version) and turns the A-ASSOCIATE-AC result list into plain
``AcceptedContext`` records with pynetdicom's ``negotiate_as_requestor``. Kept apart
from the socket code so it can be tested without a peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom._globals import APPLICATION_CONTEXT_NAME
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE, ImplementationClassUIDNotification, ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext, build_context, negotiate_as_requestor

from simulators.errors import ConfigError

#: What a caller proposes: one abstract syntax with the transfer syntaxes it can send.
ContextRequest = tuple[str, Sequence[str]]

#: PS3.8 9.3.3.2 presentation context results, in words.
CONTEXT_RESULTS = {
    0: "acceptance", 1: "user-rejection", 2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported", 4: "transfer-syntaxes-not-supported",
}


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    """One presentation context as the acceptor answered it."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    result: int

    @property
    def accepted(self) -> bool:
        return self.result == 0

    @property
    def result_text(self) -> str:
        return CONTEXT_RESULTS.get(self.result, f"result {self.result}")


def build_contexts(requests: Iterable[ContextRequest]) -> list[PresentationContext]:
    """Number the requested contexts 1, 3, 5... (PS3.8 9.3.2.2: odd IDs up to 255)."""
    contexts = []
    for index, (abstract, syntaxes) in enumerate(requests):
        if index >= 128:
            raise ConfigError("at most 128 presentation contexts can be proposed")
        if isinstance(syntaxes, str):
            syntaxes = [syntaxes]
        if not syntaxes:
            raise ConfigError("a presentation context needs a transfer syntax",
                              abstract_syntax=abstract)
        context = build_context(abstract, list(syntaxes))
        context.context_id = 2 * index + 1
        contexts.append(context)
    if not contexts:
        raise ConfigError("at least one presentation context must be proposed")
    return contexts


def associate_rq_bytes(calling_ae: str, called_ae: str, contexts: list[PresentationContext],
                       max_pdu: int) -> bytes:
    """The encoded A-ASSOCIATE-RQ PDU proposing ``contexts``."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    primitive.calling_ae_title = calling_ae
    primitive.called_ae_title = called_ae
    primitive.presentation_context_definition_list = contexts
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    primitive.user_information = [max_length, implementation, version]
    return A_ASSOCIATE_RQ(primitive).encode()


def accepted_contexts(proposed: list[PresentationContext],
                      ac: A_ASSOCIATE_AC) -> tuple[list[AcceptedContext], int]:
    """The negotiated contexts and the peer's maximum PDU length (0 = unlimited)."""
    primitive = ac.to_primitive()
    negotiated = negotiate_as_requestor(proposed, primitive.presentation_context_definition_results_list)
    results = [
        AcceptedContext(int(cx.context_id or 0), str(cx.abstract_syntax),
                        str(cx.transfer_syntax[0]) if cx.transfer_syntax else "",
                        int(cx.result if cx.result is not None else 2))
        for cx in negotiated
    ]
    return results, int(primitive.maximum_length_received or 0)


__all__ = ["AcceptedContext", "ContextRequest", "build_contexts", "associate_rq_bytes",
           "accepted_contexts", "CONTEXT_RESULTS"]
