"""A site as users declare it: the actors, the target under test and what it supports.

Why its own layer: a scenario (``environment:``), the training sandbox (a site file)
and the container runtimes (compose files, swarm stacks) all describe the same site.
The model lives below all of them so each reads one definition, and only a starter
(:mod:`simulators.site.site`, :mod:`simulators.runtime.remote_site`) turns it into
running actors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from simulators.common.fields import AeTitle, Identifier, Port
from simulators.dicom.address import AeAddress, TlsSettings, parse_ae_address


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a test that lies."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- actors
class FaultRef(StrictModel):
    """A fault from the catalogue attached to an actor, optionally only sometimes."""

    id: str = Field(min_length=1, description="catalogue id or profile, e.g. mpps.wrong-patient")
    rate: float = Field(1.0, ge=0.0, le=1.0, description="fraction of exchanges affected")
    nth: int | None = Field(None, ge=1, description="only the nth exchange at the hook")
    every: int | None = Field(None, ge=1, description="every nth exchange at the hook")
    seed: int | None = Field(None, description="seed for rate < 1 (deterministic)")
    only: dict[str, Any] = Field(default_factory=dict,
                                 description="targeting, e.g. {study: 3}")


def _fault_refs(value: list[FaultRef | str]) -> list[FaultRef]:
    """``faults: [id, {id: ..., rate: 0.1}]``: a bare id is shorthand for ``{id: ...}``."""
    return [FaultRef(id=item) if isinstance(item, str) else item for item in value]


class ActorSpecBase(StrictModel):
    """Keys every actor has. ``settings`` goes verbatim to the actor's own config class."""

    kind: str
    host: str = Field("127.0.0.1", description="address to listen on")
    port: Port = Field(0, description="listening port; 0 picks a free one")
    faults: Annotated[list[FaultRef | Annotated[str, Field(min_length=1)]],
                      AfterValidator(_fault_refs)] = Field(
        default_factory=list, description="catalogue fault ids, or {id, rate, only}")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="extra settings for the actor's config")


class EhrSpec(ActorSpecBase):
    """The EHR (ADT and order placer): speaks HL7 only."""

    kind: Literal["ehr"]


class RisSpec(ActorSpecBase):
    """The RIS (order filler): HL7 in, Modality Worklist and MPPS out."""

    kind: Literal["ris"]
    ae_title: AeTitle = "RIS"
    hl7_port: Port = Field(0, description="HL7 MLLP port; 0 picks a free one")
    mwl: bool = True
    mpps: bool = True


class ModalitySpec(ActorSpecBase):
    """An acquisition modality, named and titled as it is at the site."""

    kind: Literal["modality"]
    ae_title: AeTitle
    modality: Annotated[str, Field(pattern=r"^[A-Z]{2,4}$",
                                   description="DICOM modality code: CT, MR, CR, US, MG...")]
    station: str | None = Field(None, description="Scheduled Station Name / AE the RIS uses")


class ArchiveSpec(ActorSpecBase):
    """An archive: the legacy PACS being replaced, or the built-in reference target."""

    kind: Literal["archive"]
    ae_title: AeTitle = "ARCHIVE"


class ViewerSpec(ActorSpecBase):
    """A viewer: a reading workstation or a physician's tablet. It searches (QIDO-RS or
    C-FIND) and loads studies (WADO-RS, C-MOVE to itself, C-GET), timing each load, and
    is a C-MOVE destination (``settings`` go to :class:`ViewerConfig`)."""

    kind: Literal["viewer"]
    ae_title: AeTitle = "VIEWER"


ActorSpec = Annotated[Union[EhrSpec, RisSpec, ModalitySpec, ArchiveSpec, ViewerSpec],
                      Field(discriminator="kind")]
ACTOR_KINDS = ("ehr", "ris", "modality", "archive", "viewer")


# --------------------------------------------------------------------------- target
class ExternalEndpoints(StrictModel):
    """Where a real target listens. Only DICOM is required."""

    dicom: Annotated[str, Field(pattern=r"^[^@\\\s]{1,16}@[^:\s@]+:\d{1,5}$",
                                description="AE@HOST:PORT")]
    hl7: Annotated[str, Field(pattern=r"^[^:\s]+:\d{1,5}$", description="HOST:PORT")] | None = None
    dicomweb: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    tls: dict[str, Any] | None = Field(
        None, description="DICOM TLS to the target: cert, key, ca, profile (PS3.15 BCP 195)")

    @property
    def dicom_address(self) -> AeAddress:
        """The DICOM endpoint as a peer, over TLS when ``tls`` is given (ConfigError for a
        port out of range or a bad ``tls`` key)."""
        address = parse_ae_address(self.dicom, "environment.target.external.dicom")
        if self.tls is None:
            return address
        return AeAddress(ae_title=address.ae_title, host=address.host, port=address.port,
                         tls=TlsSettings.from_config(self.tls,
                                                     "environment.target.external.tls"))


class ExternalTarget(StrictModel):
    external: ExternalEndpoints


#: What each kind of target is *configured* with unless the scenario says otherwise
#: (whether pacsim turns on the DICOMweb of a target it starts). Nothing here is a
#: claim about what a target supports: that is probed when the site starts
#: (:mod:`simulators.site.capabilities`) unless ``supports:`` declares it.
TARGET_DEFAULT_SUPPORT: dict[str, dict[str, bool]] = {
    "builtin": {},
    "orthanc": {},
    "external": {},
}


class Supports(StrictModel):
    """Which transactions the target supports, *declared*; unset means "probe it when
    the site starts" (a declaration wins over the probe)."""

    hl7: bool | None = None
    mwl: bool | None = None
    mpps: bool | None = None
    storage_commitment: bool | None = None
    query: bool | None = None
    move: bool | None = None
    get: bool | None = None
    dicomweb: bool | None = None


class Environment(StrictModel):
    """The systems taking part and the target under test."""

    seed: int = Field(42, description="seed of the synthetic world")
    target: Literal["builtin", "orthanc"] | ExternalTarget = Field(
        "builtin", union_mode="left_to_right")
    supports: Supports = Field(default_factory=Supports)
    actors: dict[Identifier, ActorSpec] = Field(default_factory=dict)
    patients: dict[Identifier, Annotated[int, Field(ge=0, le=10**6)]] = Field(
        default_factory=dict,
        description="names for patients of the seeded world: {jane: 0} makes $jane patient 0 "
                    "($patient0, $patient1... always work)")

    @property
    def target_kind(self) -> str:
        return self.target if isinstance(self.target, str) else "external"

    def declarations(self) -> dict[str, bool]:
        """The services ``supports:`` declares (set explicitly), for the capability probe."""
        return {name: value for name, value in self.supports.model_dump().items()
                if value is not None}

    def supported(self, transaction: str) -> bool:
        """Whether to *configure* ``transaction`` on a target pacsim starts (DICOMweb on
        the built-in archive or Orthanc): explicit setting, else on. What a running
        target supports is :attr:`Site.capabilities`, learned at start."""
        explicit = getattr(self.supports, transaction, None)
        if explicit is not None:
            return explicit
        return TARGET_DEFAULT_SUPPORT[self.target_kind].get(transaction, True)


__all__ = ["StrictModel", "FaultRef", "ActorSpecBase", "EhrSpec", "RisSpec", "ModalitySpec",
           "ArchiveSpec", "ViewerSpec", "ActorSpec", "ACTOR_KINDS", "ExternalEndpoints",
           "ExternalTarget", "TARGET_DEFAULT_SUPPORT", "Supports", "Environment"]
