/* Prints sizeof/offsetof of the libbpf option and info structs pybpf mirrors in ctypes. */
#include <stddef.h>
#include <stdio.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define S(t) printf(#t " sizeof %zu\n", sizeof(struct t))
#define O(t, f) printf(#t " " #f " %zu\n", offsetof(struct t, f))

int main(void)
{
	S(bpf_object_open_opts);
	O(bpf_object_open_opts, pin_root_path);
	O(bpf_object_open_opts, kconfig);
	O(bpf_object_open_opts, kernel_log_level);
	S(bpf_test_run_opts);
	O(bpf_test_run_opts, ctx_in);
	O(bpf_test_run_opts, retval);
	O(bpf_test_run_opts, batch_size);
	S(bpf_map_batch_opts);
	O(bpf_map_batch_opts, elem_flags);
	S(bpf_prog_info);
	O(bpf_prog_info, name);
	O(bpf_prog_info, netns_dev);
	O(bpf_prog_info, run_time_ns);
	O(bpf_prog_info, run_cnt);
	O(bpf_prog_info, verified_insns);
	S(bpf_map_info);
	O(bpf_map_info, name);
	O(bpf_map_info, btf_value_type_id);
	O(bpf_map_info, map_extra);
	return 0;
}
