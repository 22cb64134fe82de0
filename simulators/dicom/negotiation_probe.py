"""Ask a peer which SOP classes it accepts: one association, its own A-ASSOCIATE-AC.

Why ask instead of assume: a verdict such as "the target refuses retired SOP
classes" or "the target has no MPPS" must rest on the peer's own answer. Proposing a
presentation context per abstract syntax (plus Verification, so the association is
accepted even when nothing else is) and reading the result of each is that answer
(PS3.8 9.3.3.2: acceptance, or abstract-syntax-not-supported, or
transfer-syntaxes-not-supported, or no-reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.dicom.address import AeAddress
from simulators.dicom.fast import FastClient
from simulators.events import EventBus

VERIFICATION = "1.2.840.10008.1.1"
ACCEPTED = "accepted"
#: A presentation context carries at most 127 odd IDs: 126 syntaxes plus Verification.
_MAX_PROPOSED = 126


@dataclass(frozen=True)
class Negotiation:
    """The peer's answer: abstract syntax -> ``accepted`` or its reason for refusing
    (Verification included), and its C-ECHO status when one was asked for."""

    results: dict[str, str]
    echo: int | None = None

    def accepted(self, syntax: str) -> bool:
        return self.results.get(syntax) == ACCEPTED


def negotiate(peer: AeAddress, calling_ae: str, abstract_syntaxes: Iterable[str], *,
              echo: bool = False, events: EventBus | None = None,
              transfer_syntaxes: Iterable[str] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
              timeout: float = 30.0) -> Negotiation:
    """Propose Verification plus each abstract syntax in one association (over TLS when
    the peer's address says so); C-ECHO on it when ``echo`` and Verification was accepted.

    Raises the association's error (a :class:`~simulators.errors.PacsimError`) when the
    peer refuses the association as a whole: then nothing was learned.
    """
    wanted = list(dict.fromkeys(s for s in abstract_syntaxes if s and s != VERIFICATION))
    if len(wanted) > _MAX_PROPOSED:
        raise ValueError(f"at most {_MAX_PROPOSED} abstract syntaxes per probe")
    syntaxes = list(transfer_syntaxes)
    client = FastClient(actor="negotiation-probe", events=events, dimse_timeout=timeout)
    try:
        client.connect(peer.host, peer.port, calling_ae, peer.ae_title,
                       [(VERIFICATION, syntaxes), *((s, syntaxes) for s in wanted)],
                       timeout=timeout, tls=peer.tls)
        answers = {c.abstract_syntax: (ACCEPTED if c.accepted else c.result_text)
                   for c in client.contexts}
        status = client.echo() if echo and answers.get(VERIFICATION) == ACCEPTED else None
    finally:
        client.close()
    return Negotiation({syntax: answers.get(syntax, "no answer")
                        for syntax in (VERIFICATION, *wanted)}, status)


__all__ = ["negotiate", "Negotiation", "ACCEPTED", "VERIFICATION"]
