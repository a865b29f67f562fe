"""The engine floor: one event loop over one list's rows (scheduling, hosts, retries, results)."""
