"""TLS for every DICOM and MLLP connection: one settings type, PS3.15 profiles, test PKI.

``settings`` turns a ``tls:`` block into the ``ssl.SSLContext`` a listener or client
uses; ``certs`` makes a private CA and certificates for a test site (``pacsim certs``).
It sits beside ``config`` (above ``errors``, below ``dicom`` and ``hl7``) because the
DICOM and the MLLP layers must share it and neither may import the other.
"""

from simulators.tls.settings import DEFAULT_PROFILE, PROFILES, TlsSettings, describe_tls_failure

__all__ = ["TlsSettings", "PROFILES", "DEFAULT_PROFILE", "describe_tls_failure"]
