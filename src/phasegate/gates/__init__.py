"""The gates: what each phase must prove, one module per phase's checks.

- :mod:`~phasegate.gates.result`: :class:`CheckResult`, the verdict of one check
  of one data type in one phase, which every gate returns and every report reads;
- :mod:`~phasegate.gates.registry`: the checks of each phase, in report order
  (the plugin and the report read it; neither imports a gate module);
- :mod:`~phasegate.gates.phase_a` (backfill: coverage, counts, sample, recency,
  full, refint, rerun), :mod:`~phasegate.gates.phase_b` (dual-write under
  faults), :mod:`~phasegate.gates.phase_c_queries` (query shapes, foreign-key
  indexes and plans) and :mod:`~phasegate.gates.phase_c_load` (Locust p95,
  errors, baseline, throughput).

The comparison engine the data gates use lives in :mod:`phasegate.parity`.
"""
