"""A run in dataset shards (``--output-format webdataset|parquet``): the shard files (``files``), one
shard's processing (``shard``), its record in the state database (``statedb``, ``tracking``), a run's
status (``status``) and where shards run (``runners``). Nothing here loads on a plain list's run but
``runners.ranks``'s usage checks."""
