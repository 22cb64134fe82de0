"""Go-live checks for the new PACS: an order placed in the EHR ends up as a study on the
target with the EHR's demographics, for every scanner in the department."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.pacsim


@pytest.mark.parametrize("scanner", ["ct1", "mr1"])
def test_scheduled_exam_arrives_with_ehr_demographics(scanner, pacsim_orders, pacsim_target,
                                                      pacsim_world):
    order = pacsim_orders.place(patient=3, modality_actor=scanner)
    study = pacsim_target.wait_for_study(order.accession, timeout=60)
    patient = pacsim_world.patient(3)
    assert study.PatientID == patient.patient_id
    assert str(study.PatientName) == patient.dicom_name
    assert study.PatientBirthDate == patient.dicom_birth_date


def test_every_image_of_the_exam_is_stored(pacsim_orders, pacsim_target):
    order = pacsim_orders.place(patient=4, modality_actor="mr1")
    study = pacsim_target.wait_for_study(order.accession, instances=4, timeout=60)
    assert int(study.NumberOfStudyRelatedInstances) == 4  # 2 series x 2 images


def test_target_answers_queries_for_unknown_accessions_with_no_match(pacsim_target):
    assert pacsim_target.find_studies(AccessionNumber="NOSUCHACCESSION") == []
