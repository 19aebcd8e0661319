"""Stable resources: StableAge seconds after their last instance (kept in the index)."""

from __future__ import annotations

from tests.plugins.test_hooks import wait_for


def test_series_study_patient_become_stable(isengard_factory, dicom_factory):
    server = isengard_factory({"stable_age": 1})
    answer = server.upload(dicom_factory.instance())
    assert server.get(f"/series/{answer['ParentSeries']}").json()["IsStable"] is False

    def stable_changes() -> list[str]:
        changes = server.get("/changes?limit=100").json()["Changes"]
        return [c["ChangeType"] for c in changes if c["ChangeType"].startswith("Stable")]

    wait_for(lambda: len(stable_changes()) == 3, timeout=30)
    assert sorted(stable_changes()) == ["StablePatient", "StableSeries", "StableStudy"]
    for level, key in (("patients", "ParentPatient"), ("studies", "ParentStudy"),
                       ("series", "ParentSeries")):
        assert server.get(f"/{level}/{answer[key]}").json()["IsStable"] is True


def test_stability_survives_a_restart(isengard_factory, dicom_factory, tmp_path):
    data = tmp_path / "data"
    first = isengard_factory({"stable_age": 2}, data_dir=data)
    answer = first.upload(dicom_factory.instance())
    first.stop()  # the deadline is stored in the index, not in the stopped process
    second = isengard_factory({"stable_age": 2}, data_dir=data)
    wait_for(lambda: second.get(f"/series/{answer['ParentSeries']}").json()["IsStable"],
             timeout=30)
