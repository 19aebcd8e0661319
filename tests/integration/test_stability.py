"""Stable resources: StableAge seconds after their last instance (kept in the index)."""

from __future__ import annotations

import sqlite3
import time

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


def test_deadline_moves_with_each_instance_never_before_stable_age(isengard_factory,
                                                                  dicom_factory):
    """Deadlines are whole seconds (instances of a burst share one): rounded up, so a
    resource is never stable earlier than StableAge after its last instance."""
    server = isengard_factory({"stable_age": 30})
    files = dicom_factory.series(4)
    server.upload(files[0])
    index = sqlite3.connect(server.data_dir / "index.sqlite")
    try:
        for data in files[1:]:
            before = time.time()
            server.upload(data)
            rows = index.execute("SELECT level, deadline FROM unstable_resources").fetchall()
            assert sorted(level for level, _ in rows) == [0, 1, 2]
            for _, deadline in rows:
                assert deadline == int(deadline) and deadline >= before + 30
    finally:
        index.close()
