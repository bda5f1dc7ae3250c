/* The attestation decision (see policy_model.h): verified claims against a
 * policy's service. Pure: no I/O, no clock, no CAS state; unit tested in
 * tests/unit/test_decide.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "veil/evidence.h"
#include "veil/policy_model.h"

static int listed(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

static int refuse(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return VEIL_EINVAL;
}

/* a claim the policy names must be equal: the claim's name in the refusal */
static int same(const char *want, const char *got, const char *what, const char *config_id,
		char *why, size_t cap)
{
	if (!want || !strcmp(want, got))
		return 0;
	return refuse(why, cap, "%s %.16s... does not match policy %s (%.16s...)", what, got,
		      config_id, want);
}

/* Which tolerance each TCB status needs (SCONE's words: -C
 * insecure-configuration, -G outdated-tcb, -S software-hardening-needed) */
static int tcb_ok(const struct veil_policy *p, const struct veil_claims *cl, const char *config_id,
		  char *why, size_t cap)
{
	static const struct {
		const char *status, *need1, *need2;
	} table[] = {
	    {"up-to-date", NULL, NULL},
	    {"sw-hardening-needed", "software-hardening-needed", NULL},
	    {"configuration-needed", "insecure-configuration", NULL},
	    {"configuration-and-sw-hardening-needed", "insecure-configuration",
	     "software-hardening-needed"},
	    {"out-of-date", "outdated-tcb", NULL},
	    {"out-of-date-configuration-needed", "outdated-tcb", "insecure-configuration"},
	};
	const char *st = cl->tcb_status;
	if (!strcmp(st, "revoked"))
		return refuse(why, cap,
			      "tcb_status revoked: the platform's key is revoked (no "
			      "policy tolerates that)");
	if (!strcmp(st, "not-evaluated")) {
		if (listed(p->tolerate, p->tolerate_count, "outdated-tcb"))
			return 0;
		return refuse(why, cap,
			      "tcb_status not-evaluated: the CAS has no collateral for this "
			      "platform (veil-cas --collateral DIR), and policy %s does not "
			      "tolerate outdated-tcb",
			      config_id);
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++) {
		if (strcmp(table[i].status, st))
			continue;
		const char *need[] = {table[i].need1, table[i].need2};
		for (int k = 0; k < 2; k++)
			if (need[k] && !listed(p->tolerate, p->tolerate_count, need[k]))
				return refuse(
				    why, cap,
				    "tcb_status %s refused: policy %s does not tolerate %s", st,
				    config_id, need[k]);
		return 0;
	}
	return refuse(why, cap, "tcb_status '%.48s' is unknown", st);
}

/* SCONE's tolerations that stand for advisories: hyperthreading for the
 * side channels that need it off (L1TF, MDS), insecure-igpu for SGX with
 * the integrated GPU enabled, aepic-leak for AEPIC Leak */
static int covered_by_tolerance(const struct veil_policy *p, const char *id)
{
	static const struct {
		const char *tolerate, *advisory;
	} map[] = {
	    {"hyperthreading", "INTEL-SA-00161"},
	    {"hyperthreading", "INTEL-SA-00233"},
	    {"insecure-igpu", "INTEL-SA-00219"},
	    {"aepic-leak", "INTEL-SA-00657"},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (!strcmp(map[i].advisory, id) &&
		    listed(p->tolerate, p->tolerate_count, map[i].tolerate))
			return 1;
	return 0;
}

/* AMD's reported TCB is what the VCEK certifies; whether it is recent
 * enough is the policy's snp.tcb_min, else it is not known (outdated-tcb) */
static int snp_tcb(const struct veil_policy *p, const struct veil_policy_service *svc,
		   const struct veil_claims *cl, const char *config_id, char *why, size_t cap)
{
	int outdated_ok = listed(p->tolerate, p->tolerate_count, "outdated-tcb");
	if (!svc->has_snp_tcb_min) {
		if (outdated_ok)
			return 0;
		return refuse(why, cap,
			      "snp reported TCB not evaluated: policy %s names no snp.tcb_min and "
			      "does not tolerate outdated-tcb",
			      config_id);
	}
	const struct {
		const char *name;
		unsigned got, min;
	} spl[] = {
	    {"bl_spl", cl->snp_bl_spl, svc->snp_tcb_min_bl},
	    {"tee_spl", cl->snp_tee_spl, svc->snp_tcb_min_tee},
	    {"snp_spl", cl->snp_snp_spl, svc->snp_tcb_min_snp},
	    {"microcode_spl", cl->snp_ucode_spl, svc->snp_tcb_min_ucode},
	    {"fmc_spl", cl->snp_fmc_spl, svc->snp_tcb_min_fmc},
	};
	for (size_t i = 0; i < sizeof(spl) / sizeof(*spl); i++)
		if (spl[i].got < spl[i].min && !outdated_ok)
			return refuse(why, cap,
				      "snp reported TCB %s %u is below policy %s's tcb_min %u "
				      "(tolerate outdated-tcb to accept)",
				      spl[i].name, spl[i].got, config_id, spl[i].min);
	return 0;
}

static int advisories_ok(const struct veil_policy *p, const struct veil_claims *cl,
			 const char *config_id, char *why, size_t cap)
{
	if (listed(p->ignore_advisories, p->ignore_advisories_count, "*"))
		return 0;
	const char *a = cl->advisories;
	while (*a) {
		size_t n = strcspn(a, ",");
		char id[64];
		snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) ? n : sizeof(id) - 1), a);
		if (!listed(p->ignore_advisories, p->ignore_advisories_count, id) &&
		    !covered_by_tolerance(p, id))
			return refuse(why, cap,
				      "advisory %s applies to the platform and policy %s does not "
				      "list it in security.attestation.ignore_advisories",
				      id, config_id);
		a += n + (a[n] == ',');
	}
	return 0;
}

int veil_attest_decide(const struct veil_policy *p, const struct veil_policy_service *svc,
		       const struct veil_claims *cl, const char *config_id, char *why, size_t cap)
{
	why[0] = '\0';
	if (cl->debug && !listed(p->tolerate, p->tolerate_count, "debug-mode"))
		return refuse(why, cap,
			      "debug evidence (%s platform) refused: policy %s does not tolerate "
			      "debug-mode",
			      cl->platform, p->name);
	const char *plat = cl->platform;
	if (!strcmp(plat, "sim")) {
		if (!listed(svc->mrenclaves, svc->mrenclave_count, cl->measurement))
			return refuse(why, cap, "measurement %.16s... not in policy %s",
				      cl->measurement, config_id);
		return 0; /* simulation: always debug, its TCB means nothing */
	}
	if (!strcmp(plat, "sgx")) {
		if (!svc->mrenclave_count && !svc->has_signer)
			return refuse(why, cap,
				      "policy %s names no SGX enclave (mrenclaves or signer)",
				      config_id);
		if (svc->mrenclave_count &&
		    !listed(svc->mrenclaves, svc->mrenclave_count, cl->measurement))
			return refuse(why, cap, "mrenclave %.16s... not in policy %s",
				      cl->measurement, config_id);
		if (svc->has_signer) {
			if (same(svc->signer_mrsigner, cl->signer, "mrsigner", config_id, why, cap))
				return VEIL_EINVAL;
			if (svc->has_isvprodid && cl->isvprodid != svc->signer_isvprodid)
				return refuse(why, cap,
					      "isvprodid %u does not match policy %s (%u)",
					      cl->isvprodid, config_id, svc->signer_isvprodid);
			if (cl->isvsvn < svc->signer_isvsvn_min)
				return refuse(why, cap,
					      "isvsvn %u is below policy %s's isvsvn_min %u",
					      cl->isvsvn, config_id, svc->signer_isvsvn_min);
		}
	} else if (!strcmp(plat, "tdx")) {
		if (!svc->tdx_mrtd)
			return refuse(why, cap, "policy %s names no TD (tdx.mrtd)", config_id);
		static const char *const names[] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
		if (same(svc->tdx_mrtd, cl->measurement, "mrtd", config_id, why, cap))
			return VEIL_EINVAL;
		for (int i = 0; i < 4; i++)
			if (same(svc->tdx_rtmr[i], cl->rtmr[i], names[i], config_id, why, cap))
				return VEIL_EINVAL;
		if (same(svc->tdx_mrconfigid, cl->mrconfigid, "mrconfigid", config_id, why, cap) ||
		    same(svc->tdx_mrowner, cl->mrowner, "mrowner", config_id, why, cap))
			return VEIL_EINVAL;
	} else if (!strcmp(plat, "snp")) {
		if (!svc->snp_measurement)
			return refuse(why, cap,
				      "policy %s names no SEV-SNP guest (snp.measurement)",
				      config_id);
		if (same(svc->snp_measurement, cl->measurement, "measurement", config_id, why,
			 cap) ||
		    same(svc->snp_host_data, cl->host_data, "host_data", config_id, why, cap))
			return VEIL_EINVAL;
		if (cl->guest_svn < svc->snp_guest_svn_min)
			return refuse(why, cap,
				      "guest_svn %u is below policy %s's guest_svn_min %u",
				      cl->guest_svn, config_id, svc->snp_guest_svn_min);
		if (cl->vmpl != svc->snp_vmpl)
			return refuse(why, cap, "vmpl %u is not policy %s's %u", cl->vmpl,
				      config_id, svc->snp_vmpl);
		/* guest policy: bit 18 a migration agent may export the guest's
		 * memory; bit 16 SMT (another thread on the core) */
		if (cl->snp_policy & (1ull << 18))
			return refuse(why, cap,
				      "snp policy 0x%llx allows a migration agent (MIGRATE_MA): "
				      "refused",
				      cl->snp_policy);
		if ((cl->snp_policy & (1ull << 16)) &&
		    !listed(p->tolerate, p->tolerate_count, "hyperthreading"))
			return refuse(
			    why, cap,
			    "snp policy 0x%llx allows SMT and policy %s does not tolerate "
			    "hyperthreading",
			    cl->snp_policy, config_id);
		if (snp_tcb(p, svc, cl, config_id, why, cap))
			return VEIL_EINVAL;
		return advisories_ok(p, cl, config_id, why, cap);
	} else {
		return refuse(why, cap, "platform '%.16s' is unknown", plat);
	}
	if (tcb_ok(p, cl, config_id, why, cap) || advisories_ok(p, cl, config_id, why, cap))
		return VEIL_EINVAL;
	return 0;
}
