"""Probes for the TLS faults (PS3.15 Annex B): bad handshakes against a TLS target.

Each probe opens its own TCP connection and tries a handshake the target must refuse
(an old protocol version, an expired or foreign client certificate, none at all, or
no TLS whatsoever). Conformant is: the handshake fails or the connection closes, no
A-ASSOCIATE-AC ever comes back, and a proper TLS C-ECHO still works afterwards. The
client-certificate cases need the fault certificates ``pacsim certs`` writes
(``Target.pki``) and a target that requires client certificates (``Target.tls_mutual``);
without them they are reported "not supported", never guessed.
"""

from __future__ import annotations

import socket
import ssl
import time
import warnings

from pynetdicom.sop_class import Verification

from simulators.dicom.address import AeAddress
from simulators.dicom.fast import codec
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.faults.probing import ProbeRun, probe
from simulators.faults.raw_dicom import EXPLICIT_LE, IMPLICIT_LE, RawAssociation
from simulators.faults.scu import serving
from simulators.faults.target import Target
from simulators.injection.model import Observation
from simulators.tls import TlsSettings, describe_tls_failure

VERIFICATION = str(Verification)
SYNTAXES = [EXPLICIT_LE, IMPLICIT_LE]
REFUSED, NO_AC, SERVING = ("handshake refused", "no A-ASSOCIATE-AC",
                           "still serving afterwards")
#: OpenSSL reasons that mean *our* side could not offer what the probe asked for.
_LOCAL_LIMITS = ("no protocols available", "no ciphers available")


def _tls_endpoint(target: Target, sent: str) -> AeAddress | Observation:
    endpoint = target.dicom or target.store
    if endpoint is None:
        return Observation(sent=sent, unsupported="target has no DICOM address")
    if endpoint.tls is None:
        return Observation(sent=sent, unsupported="target is not reached over TLS "
                                                  "(faults run --tls-dir or --tls-ca)")
    return endpoint


def _finish(obs: Observation, endpoint: AeAddress, target: Target) -> Observation:
    obs.checks[SERVING] = serving(endpoint, target.calling_ae)
    return obs


def _attempt(endpoint: AeAddress, target: Target, tls: TlsSettings, sent: str) -> Observation:
    """Handshake with ``tls``, then (if it completed) an A-ASSOCIATE-RQ."""
    obs = Observation(sent=sent)
    try:
        raw = RawAssociation(endpoint.host, endpoint.port, tls=tls)
    except (ssl.SSLError, OSError) as exc:
        obs.answered = f"handshake refused: {describe_tls_failure(exc)}"
        obs.closed = True
        obs.checks[REFUSED] = obs.checks[NO_AC] = True
        return _finish(obs, endpoint, target)
    with raw:
        # TLS 1.3 finishes the client's side before the server has judged our
        # certificate: its refusal comes as an alert or a close on the first read
        try:
            answer = raw.associate(target.calling_ae, endpoint.ae_title,
                                   [(VERIFICATION, SYNTAXES)])
        except (ssl.SSLError, OSError) as exc:
            obs.answered = f"refused after the handshake: {describe_tls_failure(exc)}"
            obs.checks[REFUSED] = obs.checks[NO_AC] = True
            return _finish(obs, endpoint, target)
        accepted = answer.kind == "accepted"
        if accepted:
            raw.abort()
        obs.answered = answer.describe() if accepted else f"{answer.describe()} after the handshake"
        obs.closed = answer.kind == "closed"
        obs.checks[REFUSED] = not accepted
        obs.checks[NO_AC] = not accepted
    return _finish(obs, endpoint, target)


def _client_cert_probe(stem: str | None, sent: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        endpoint = _tls_endpoint(target, sent)
        if isinstance(endpoint, Observation):
            return endpoint
        assert endpoint.tls is not None
        if not target.tls_mutual:
            return Observation(sent=sent, unsupported="target does not require client "
                                                      "certificates (faults run --tls-mutual)")
        files: dict[str, str] = {}
        if stem is not None:
            pki = target.pki
            cert, key = (pki / f"{stem}.pem", pki / f"{stem}.key") if pki else (None, None)
            if cert is None or key is None or not cert.is_file() or not key.is_file():
                return Observation(sent=sent, unsupported=f"needs {stem}.pem and {stem}.key "
                                                          "from `pacsim certs` (--tls-dir)")
            files = {"cert": str(cert), "key": str(key)}
        tls = TlsSettings(ca=endpoint.tls.ca, profile=endpoint.tls.profile,
                          verify=endpoint.tls.verify, **files)
        return _attempt(endpoint, target, tls, sent)
    return run_probe


probe("tls.expired-cert")(_client_cert_probe("expired", "client certificate expired in 2021"))
probe("tls.unknown-ca")(_client_cert_probe("unknown", "client certificate from unknown-ca"))
probe("tls.no-client-cert")(_client_cert_probe(None, "TLS without a client certificate"))


@probe("tls.old-version")
def old_version(target: Target, run: ProbeRun) -> Observation:
    sent = "ClientHello offering TLS 1.0-1.1 only"
    endpoint = _tls_endpoint(target, sent)
    if isinstance(endpoint, Observation):
        return endpoint
    assert endpoint.tls is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():  # offering deprecated versions is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if endpoint.tls.cert and endpoint.tls.key:  # so a mutual target judges the version
        context.load_cert_chain(endpoint.tls.cert, endpoint.tls.key)
    obs = Observation(sent=sent)
    with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=endpoint.host) as secured:
                obs.answered = f"handshake completed with {secured.version()}"
                obs.checks[REFUSED] = False
                secured.sendall(associate_rq_bytes(
                    target.calling_ae, endpoint.ae_title,
                    build_contexts([(VERIFICATION, SYNTAXES)]), 16_384))
                secured.settimeout(5)
                first = secured.recv(1)
                obs.checks[NO_AC] = first[:1] != bytes([codec.A_ASSOCIATE_AC_TYPE])
        except (ssl.SSLError, OSError) as exc:
            reason = describe_tls_failure(exc)
            if any(limit in reason for limit in _LOCAL_LIMITS):
                return Observation(sent=sent, unsupported=f"this machine's OpenSSL cannot "
                                                          f"offer TLS 1.0/1.1 ({reason})")
            obs.answered = f"handshake refused: {reason}"
            obs.checks[REFUSED] = obs.checks[NO_AC] = True
    return _finish(obs, endpoint, target)


@probe("tls.plain-on-tls-port")
def plain_on_tls_port(target: Target, run: ProbeRun) -> Observation:
    sent = "plain A-ASSOCIATE-RQ to the TLS port"
    endpoint = _tls_endpoint(target, sent)
    if isinstance(endpoint, Observation):
        return endpoint
    obs = Observation(sent=sent)
    received = b""
    deadline = time.monotonic() + 15  # a target waits for its ARTIM before closing
    with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as raw:
        raw.sendall(associate_rq_bytes(target.calling_ae, endpoint.ae_title,
                                       build_contexts([(VERIFICATION, SYNTAXES)]), 16_384))
        closed = False
        while not closed and len(received) < 4096 and time.monotonic() < deadline:
            raw.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = raw.recv(4096)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            closed = not chunk
            received += chunk
    if received[:1] == bytes([codec.A_ASSOCIATE_AC_TYPE]):
        obs.answered = "A-ASSOCIATE-AC in the clear"
    elif received[:1] == b"\x15":
        obs.answered = "TLS alert" + (", then closed" if closed else "")
    else:
        obs.answered = "connection closed" if closed else "no answer, connection left open"
        if received:
            obs.answered += f" after {len(received)} bytes"
    obs.closed = closed
    obs.checks[NO_AC] = received[:1] != bytes([codec.A_ASSOCIATE_AC_TYPE])
    obs.checks["connection closed or alerted"] = closed or received[:1] == b"\x15"
    return _finish(obs, endpoint, target)


__all__: list[str] = []
