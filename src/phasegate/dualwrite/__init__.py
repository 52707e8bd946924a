"""The dual-writer: every app write as a :class:`~phasegate.dualwrite.change.Change`
(records to put and delete), applied to Postgres first, then KV, by the spec's
rules, with every miss journaled (:mod:`phasegate.journal`).

- :mod:`.change`: steps, their Postgres statements, their JSON form for the journal;
- :mod:`.kvplan`: where each type's record lives in KV, as commands (pure);
- :mod:`.kvexec`: those commands run on a sync or async Redis client;
- :mod:`.ops`: the app's writes, each turning a request into a change;
- :mod:`.writer`: the rules (Postgres first, journal, both down refused) and the
  write-failure rate with its alert.
"""
