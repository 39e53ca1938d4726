// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device rules: a cgroup/dev program on every container's cgroup.
 *
 * Attached with a link, so it runs beside runc's own device program (cgroup v2) and the
 * v1 devices controller (hybrid hosts): the kernel allows an access only when every one of
 * them does, so a device Docker denies stays denied whatever the policy says.
 *
 * A container whose ruleset has no device rules leaves after the containers lookup. Else
 * each wildcard level that holds rules (container.dev_levels) is looked up once, most
 * specific first; per access class (read, write, mknod) the first rule met decides, and
 * the most severe class decides the access (deny > audit > allow, the first class on a tie).
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

/* BPF_DEVCG_ACC_* of bpf_cgroup_dev_ctx.access_type >> 16 */
#define DEVCG_ACC_MKNOD 1
#define DEVCG_ACC_READ 2
#define DEVCG_ACC_WRITE 4

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ABI_MAX_DEV_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dev_key);
	__type(value, struct dev_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dev_rules SEC(".maps");

SEC("cgroup/dev")
int enforcer_device(struct bpf_cgroup_dev_ctx *ctx)
{
	__u32 type = ctx->access_type & 0xffff, acc = ctx->access_type >> 16;
	__u32 major = ctx->major, minor = ctx->minor;
	__u8 slot_action[DACC_SLOTS] = {};
	__u32 slot_rule[DACC_SLOTS] = {};
	__u32 need = 0, accf = 0, rule_id = RULE_NONE;
	__u8 action = ACT_NONE;
	struct device_event ev;
	struct container *ct;
	struct dev_key k;
	struct dev_rule *r;
	__u64 cgid = 0;

	ct = current_container(&cgid);
	if (!ct || !(ct->flags & CT_DEV_RULES))
		return 1;
	if (acc & DEVCG_ACC_READ) {
		need |= 1u << DACC_READ;
		accf |= ACCF_READ;
	}
	if (acc & DEVCG_ACC_WRITE) {
		need |= 1u << DACC_WRITE;
		accf |= ACCF_WRITE;
	}
	if (acc & DEVCG_ACC_MKNOD) {
		need |= 1u << DACC_MKNOD;
		accf |= ACCF_MKNOD;
	}

	for (__u32 level = 0; level < DEV_LEVELS; level++) {
		if (!need)
			break;
		if (!(ct->dev_levels & (1u << level)))
			continue;
		k.ruleset = ct->ruleset;
		k.type = (level & DEV_LEVEL_TYPE_ANY) ? DEV_TYPE_ANY : type;
		k.minor = (level & DEV_LEVEL_MINOR_ANY) ? DEV_NUM_ANY : minor;
		k.major = (level & DEV_LEVEL_MAJOR_ANY) ? DEV_NUM_ANY : major;
		r = bpf_map_lookup_elem(&dev_rules, &k);
		if (!r)
			continue;
		first_match(&need, r->action, r->rule_id, DACC_SLOTS, slot_action, slot_rule);
	}
	for (int a = 0; a < DACC_SLOTS; a++) {
		if (slot_action[a] > action) { /* strict: the first class keeps a tie */
			action = slot_action[a];
			rule_id = slot_rule[a];
		}
	}
	if (action != ACT_DENY && action != ACT_AUDIT)
		return 1;

	ev.dev_type = type;
	ev.access = accf;
	ev.major = major;
	ev.minor = minor;
	report(&ev.hdr, sizeof(ev), EV_DEVICE, cgid, ct, rule_id, action,
	       fold_mix(((__u64)major << 32) | minor, ((__u64)type << 8) | accf));
	return action == ACT_DENY ? 0 : 1;
}
