"""What enforcement costs: syscall loops with and without the enforcer, in one run.

`scripts/bench` (or `python -m bench` on a host whose kernel loads BPF-LSM programs) runs
the suite; bench/README.md says what each figure means and holds the latest table.
"""
