"""The application floor: assembles a run from the spec, in one place, for the CLI, the library and
worker processes alike; runs it on one loop or on a pool of processes; reports progress and the summary."""
