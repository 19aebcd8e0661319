"""Side-by-side benchmarks of Isengard and Orthanc.

Run ``python -m benchmarks.run --help`` from the repository root; ``docs/performance.md``
explains every row. Nothing here is a test: no figure is ever asserted on.

Modules, one concept each:

- :mod:`benchmarks.scales` — dataset sizes and repetition counts (``--scale``);
- :mod:`benchmarks.data` — deterministic synthetic DICOM sets (pydicom + numpy);
- :mod:`benchmarks.servers` — start, probe and stop Isengard and Orthanc;
- :mod:`benchmarks.clients` — DCMTK ``storescu``/``findscu``, REST upload, ``/tools/find``;
- :mod:`benchmarks.scenarios` — the rows of the table and how each is measured;
- :mod:`benchmarks.report` — statistics, the table, the machine, ``docs/performance.md``;
- :mod:`benchmarks.run` — the command line;
- :mod:`benchmarks.profile` — py-spy profiles of Isengard's ingest paths.
"""
