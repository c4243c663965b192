"""See and check a machine before it decides anything: its graph, static analysis,
paths for tests. Everything here reads the frozen definition; nothing runs a guard."""
