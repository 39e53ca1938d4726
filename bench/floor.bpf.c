// SPDX-License-Identifier: GPL-2.0-only
/*
 * The floor: an LSM program on file_open that allows everything and does nothing else.
 * What it costs is what any BPF-LSM enforcer pays per open on this kernel and machine
 * (hook dispatch, trampoline, program entry and exit) before it looks at anything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/file_open")
int BPF_PROG(floor_file_open, struct file *file, int ret)
{
	return ret;
}
