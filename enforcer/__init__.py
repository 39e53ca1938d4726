"""Container security policy enforcer: BPF-LSM and cgroup BPF policies for Docker containers."""

__version__ = "0.1.0"
