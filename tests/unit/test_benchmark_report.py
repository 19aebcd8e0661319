"""The benchmark's ratios (no timing here: the figures are made up)."""

from __future__ import annotations

from benchmarks.report import code_revision, paired_ratio


def test_each_run_is_its_own_pair():
    # The machine slows down over the runs; each run's two figures slow down together.
    isengard = [200.0, 150.0, 100.0]
    orthanc = [100.0, 100.0, 50.0]
    # Median of 2.0, 1.5, 2.0 (the ratio of the medians, 150 / 100, would mix runs).
    assert paired_ratio(isengard, orthanc) == (2.0, 1.5, 2.0)


def test_unpaired_figures_fall_back_to_the_ratio_of_the_medians():
    assert paired_ratio([3.0, 1.0, 2.0], [4.0, 4.0]) == (0.5, 0.5, 0.5)
    assert paired_ratio([2.0], [0.0, 4.0]) == (1.0, 1.0, 1.0)


def test_a_frozen_copy_reports_its_own_revision(tmp_path):
    repo = tmp_path / "repo"
    (repo / "core").mkdir(parents=True)
    copy = tmp_path / "snapshot" / "src"
    (copy / "core").mkdir(parents=True)
    (copy / "REVISION").write_text("643733c\n")
    assert code_revision(repo, copy / "core") == "copy of 643733c"
    (copy / "REVISION").unlink()
    assert "without a REVISION file" in code_revision(repo, copy / "core")
