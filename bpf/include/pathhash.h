/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path hashing shared with enforcer/compiler/pathhash.py (which must stay bit-identical;
 * a unit test pins known values). FNV-1a 64 over the path bytes ("/etc/shadow"), started
 * from the offset basis xor a per-host seed; every prefix ending at a component boundary
 * is a lookup key after a murmur3 finaliser. The key also carries length and depth, so a
 * collision needs all three.
 */
#ifndef ENFORCER_PATHHASH_H
#define ENFORCER_PATHHASH_H

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static __always_inline __u64 fnv_step(__u64 h, __u8 c)
{
	return (h ^ c) * FNV_PRIME;
}

static __always_inline __u64 hash_final(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#endif /* ENFORCER_PATHHASH_H */
