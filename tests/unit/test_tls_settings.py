"""The PS3.15 profiles as ssl contexts: versions and TLS 1.2 suites each one allows."""

from __future__ import annotations

import ssl

import pytest

from simulators.errors import ConfigError
from simulators.tls import PROFILES, TlsSettings


def _suites(profile: str) -> set[str]:
    context = TlsSettings(profile=profile, verify=False).client_context()
    return {c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"}  # 1.3 suites: fixed


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_refuses_tls_below_1_2(profile: str) -> None:
    context = TlsSettings(profile=profile, verify=False).client_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert all("GCM" in s or "CHACHA20" in s or s == "AES128-SHA" for s in _suites(profile))


def test_profiles_differ_as_ps3_15_says() -> None:
    non_downgrading, bcp195 = _suites("non-downgrading"), _suites("bcp195")
    assert non_downgrading == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                               "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384"}
    assert bcp195 - non_downgrading == {"AES128-SHA"}  # the one fallback suite
    for name in ("bcp195-rfc8996", "bcp195-rfc9325"):
        suites = _suites(name)
        assert suites and all(s.startswith("ECDHE-") for s in suites)  # no DHE, no RSA kx
        assert TlsSettings(profile=name, verify=False).client_context().maximum_version \
            == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert TlsSettings(verify=False).client_context().maximum_version == ssl.TLSVersion.TLSv1_2


def test_settings_spelling_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        TlsSettings.from_config({"profile": "tls1.0"}, "store.tls")
    assert "tls.profile" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        TlsSettings.from_config({"require_client_cert": "maybe"}, "tls")
    assert caught.value.context["field"] == "tls.require_client_cert"
    with pytest.raises(ConfigError):
        TlsSettings.from_config("ca.pem", "tls")
    with pytest.raises(ConfigError):
        TlsSettings().server_context()  # a listener needs a certificate
