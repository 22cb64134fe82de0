"""``TlsSettings`` and the ``ssl.SSLContext`` each PS3.15 secure transport profile asks for.

Why one type for DICOM and MLLP: a site secures its archive port and its HL7 port with
the same certificate, key and CA, and a user should write ``tls:`` the same way on an
actor, on a peer and on the target. :class:`TlsSettings` is that spelling; the
builders below turn it into a server or client context so no listener or client picks
its own protocol versions or cipher suites.

Profiles (PS3.15 Annex B, secure transport connection profiles). Every profile here
refuses TLS 1.0 and 1.1 (RFC 8996 deprecated them; issue 13 asks for TLS 1.2 at
least), so the profiles differ in the TLS 1.2 cipher suites and in whether TLS 1.3 is
allowed:

``bcp195``
    B.9, BCP 195 TLS Secure Transport Connection Profile: the four RFC 7525
    recommended suites (ECDHE/DHE with RSA, AES-GCM) plus TLS_RSA_WITH_AES_128_CBC_SHA,
    the AES profile's suite that BCP 195 peers keep for older partners. TLS 1.2 only.
``non-downgrading``
    B.10, Non-Downgrading BCP 195 TLS Secure Transport Connection Profile: the four
    RFC 7525 AES-GCM suites and nothing to fall back to. TLS 1.2 only. DCMTK's default
    (``+py``), so it is ours too.
``bcp195-rfc8996`` / ``bcp195-rfc9325``
    The BCP 195 RFC 8996 and RFC 8996, 9325 profiles: TLS 1.2 with ECDHE key exchange
    and AEAD suites only (AES-GCM, ChaCha20-Poly1305), and TLS 1.3 (whose suites are all
    AEAD). The two names select the same context: RFC 9325 restates RFC 8996's version
    floor and narrows the 1.2 suites to these.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from simulators.errors import ConfigError

#: TLS 1.2 suites per profile, in OpenSSL's names (the RFC names are in the module doc).
_RFC7525_GCM = ("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
                "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
_RFC9325_AEAD = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")


@dataclass(frozen=True)
class Profile:
    """What one PS3.15 profile allows: its PS3.15 name, TLS 1.2 suites, highest version."""

    title: str
    ciphers: str
    maximum: ssl.TLSVersion


PROFILES: dict[str, Profile] = {
    "bcp195": Profile("BCP 195 TLS Secure Transport Connection Profile (PS3.15 B.9)",
                      _RFC7525_GCM + ":AES128-SHA", ssl.TLSVersion.TLSv1_2),
    "non-downgrading": Profile(
        "Non-Downgrading BCP 195 TLS Secure Transport Connection Profile (PS3.15 B.10)",
        _RFC7525_GCM, ssl.TLSVersion.TLSv1_2),
    "bcp195-rfc8996": Profile("BCP 195 RFC 8996 TLS Secure Transport Connection Profile",
                              _RFC9325_AEAD, ssl.TLSVersion.MAXIMUM_SUPPORTED),
    "bcp195-rfc9325": Profile(
        "BCP 195 RFC 8996, 9325 TLS Secure Transport Connection Profile",
        _RFC9325_AEAD, ssl.TLSVersion.MAXIMUM_SUPPORTED),
}
DEFAULT_PROFILE = "non-downgrading"
#: Keys a config file may write under ``tls:`` (``ca_file``... are the older spellings).
_ALIASES = {"cert_file": "cert", "key_file": "key", "ca_file": "ca"}
_KEYS = {"cert", "key", "ca", "profile", "require_client_cert", "verify"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """How one end of a DICOM association or MLLP connection is secured.

    ``cert``/``key``: our certificate chain and private key (PEM); a listener must have
    them, a client sends them only when the peer asks (mutual TLS). ``ca``: the PEM
    bundle the peer's certificate must chain to. ``profile``: a key of
    :data:`PROFILES`. ``require_client_cert`` (listeners): refuse a client that shows
    no certificate signed by ``ca``. ``verify`` (clients): check the server's
    certificate and host name against ``ca``; off only to reach a test peer whose
    certificate we cannot check, and never the default.
    """

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    profile: str = DEFAULT_PROFILE
    require_client_cert: bool = False
    verify: bool = True

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"tls.profile: unknown profile {self.profile!r}; known: "
                              + ", ".join(PROFILES), field="tls.profile")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("tls: cert and key go together (both or neither)",
                              field="tls.cert" if self.cert is None else "tls.key")
        if self.require_client_cert and not self.ca:
            raise ConfigError("tls.require_client_cert needs tls.ca to check client "
                              "certificates against", field="tls.ca")

    @classmethod
    def from_config(cls, value: Any, field: str = "tls") -> "TlsSettings":
        """A ``tls:`` mapping from a config file; unknown keys are a ConfigError naming them.

        :func:`simulators.config.build_config` calls this for fields typed ``TlsSettings``.
        """
        if isinstance(value, TlsSettings):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field}: expected a mapping of cert, key, ca, profile, "
                              f"require_client_cert, got {value!r}", field=field)
        given = {_ALIASES.get(str(key), str(key)): item for key, item in value.items()}
        unknown = sorted(set(given) - _KEYS)
        if unknown:
            raise ConfigError(f"{field}: unknown {', '.join(unknown)}; known: "
                              + ", ".join(sorted(_KEYS)), field=field)
        for flag in ("require_client_cert", "verify"):
            if flag in given and not isinstance(given[flag], bool):
                text = str(given[flag]).strip().lower()
                if text not in {"true", "false", "yes", "no", "1", "0", "on", "off"}:
                    raise ConfigError(f"{field}.{flag}: expected true or false, got "
                                      f"{given[flag]!r}", field=f"{field}.{flag}")
                given[flag] = text in {"true", "yes", "1", "on"}
        for name in ("cert", "key", "ca", "profile"):
            if name in given and given[name] is not None:
                given[name] = str(given[name])
        return cls(**given)

    # -- contexts -----------------------------------------------------------------------
    def server_context(self) -> ssl.SSLContext:
        """The listener's context: our certificate, the profile, client certs per policy."""
        if not self.cert or not self.key:
            raise ConfigError("tls: a TLS listener needs tls.cert and tls.key",
                              field="tls.cert")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._apply_profile(context)
        self._load_chain(context)
        if self.ca:
            self._load_ca(context)
            context.verify_mode = (ssl.CERT_REQUIRED if self.require_client_cert
                                   else ssl.CERT_OPTIONAL)
        return context

    def client_context(self) -> ssl.SSLContext:
        """The requestor's context: verify the server against ``ca``, offer our cert."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._apply_profile(context)
        if self.verify:
            if self.ca:
                self._load_ca(context)
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert and self.key:
            self._load_chain(context)
        return context

    def describe(self) -> str:
        """``TLS non-downgrading, mutual``: how a listener's first log line names it."""
        return f"TLS {self.profile}" + (", mutual" if self.require_client_cert else "")

    @property
    def check_hostname(self) -> bool:
        """Whether a client compares the server's certificate with the host it dialled."""
        return self.verify

    def _apply_profile(self, context: ssl.SSLContext) -> None:
        profile = PROFILES[self.profile]
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = profile.maximum
        context.set_ciphers(profile.ciphers)
        context.options |= ssl.OP_NO_COMPRESSION

    def _load_chain(self, context: ssl.SSLContext) -> None:
        for name, path in (("tls.cert", self.cert), ("tls.key", self.key)):
            if not Path(str(path)).is_file():
                raise ConfigError(f"{name}: no such file {path}", field=name, file=str(path))
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except ssl.SSLError as exc:
            raise ConfigError(f"tls.cert/tls.key: cannot load the certificate and key: "
                              f"{exc.reason or exc}", field="tls.cert",
                              file=str(self.cert)) from exc

    def _load_ca(self, context: ssl.SSLContext) -> None:
        if not Path(str(self.ca)).is_file():
            raise ConfigError(f"tls.ca: no such file {self.ca}", field="tls.ca", file=str(self.ca))
        try:
            context.load_verify_locations(cafile=str(self.ca))
        except ssl.SSLError as exc:
            raise ConfigError(f"tls.ca: cannot load CA certificates: {exc.reason or exc}",
                              field="tls.ca", file=str(self.ca)) from exc


def describe_tls_failure(exc: BaseException) -> str:
    """One line naming why a handshake failed (the OpenSSL reason, or the verify error).

    Events and errors carry this, so "certificate has expired" and "unknown ca" read the
    same whether we were the client or the server.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__


__all__ = ["TlsSettings", "PROFILES", "DEFAULT_PROFILE", "Profile", "describe_tls_failure"]
