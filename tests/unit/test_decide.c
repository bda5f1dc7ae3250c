/* The attestation decision (src/policy/decide.c): verified claims against a
 * policy's service, one claim at a time, each refusal naming the claim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "veil/evidence.h"
#include "veil/policy_model.h"

#define H64(c)                                                                                     \
	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
	    c c c c c c c c c c c c c c c c c c c
#define H96(c) H64(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

struct fixture {
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	char why[600];
};

/* a policy of one service "s" with the given service lines and security
 * block (both may be "") */
static void load(struct fixture *f, const char *svc_lines, const char *security)
{
	char yaml[4096];
	snprintf(yaml, sizeof(yaml),
		 "name: ns\n"
		 "services:\n"
		 "  - name: s\n"
		 "    command: app\n"
		 "%s"
		 "%s",
		 svc_lines, security);
	veil_diags_init(&f->d);
	assert_int_equal(ydoc_init(&f->doc, "p.yaml"), 0);
	int rc = ydoc_parse(&f->doc, yaml, strlen(yaml), &veil_policy_limits, &f->d);
	if (!rc)
		rc = veil_policy_parse(&f->doc, &f->p, &f->d);
	if (rc)
		for (size_t i = 0; i < f->d.count; i++)
			fprintf(stderr, "%s\n", f->d.msgs[i]);
	assert_int_equal(rc, 0);
}

static void unload(struct fixture *f)
{
	ydoc_free(&f->doc);
	veil_diags_free(&f->d);
}

static int decide(struct fixture *f, const struct veil_claims *cl)
{
	return veil_attest_decide(&f->p, &f->p.services[0], cl, "ns/s", f->why, sizeof(f->why));
}

static struct veil_claims hw(const char *platform)
{
	struct veil_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.platform, sizeof(c.platform), "%s", platform);
	c.hardware = 1;
	snprintf(c.tcb_status, sizeof(c.tcb_status), "up-to-date");
	return c;
}

static void test_sim(void **state)
{
	(void)state;
	struct fixture f;
	load(&f, "    mrenclaves: [" H64("a") "]\n",
	     "security:\n  attestation:\n    tolerate: [debug-mode]\n");
	struct veil_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.platform, sizeof(c.platform), "sim");
	snprintf(c.measurement, sizeof(c.measurement), H64("a"));
	c.debug = 1;
	assert_int_equal(decide(&f, &c), 0);
	snprintf(c.measurement, sizeof(c.measurement), H64("b"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "measurement bbbbbbbbbbbbbbbb... not in policy ns/s");
	unload(&f);
	/* debug evidence needs debug-mode */
	load(&f, "    mrenclaves: [" H64("a") "]\n", "");
	snprintf(c.measurement, sizeof(c.measurement), H64("a"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "debug evidence (sim platform) refused: policy ns does not "
				   "tolerate debug-mode");
	unload(&f);
}

static void test_sgx_mrenclave_and_signer(void **state)
{
	(void)state;
	struct fixture f;
	load(&f,
	     "    mrenclaves: [" H64("a") "]\n"
					  "    signer: {mrsigner: " H64(
					      "5") ", isvprodid: 7, isvsvn_min: 3}\n",
	     "");
	struct veil_claims c = hw("sgx");
	snprintf(c.measurement, sizeof(c.measurement), H64("a"));
	snprintf(c.signer, sizeof(c.signer), H64("5"));
	c.isvprodid = 7;
	c.isvsvn = 3;
	assert_int_equal(decide(&f, &c), 0);
	c.isvsvn = 2;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "isvsvn 2 is below policy ns/s's isvsvn_min 3");
	c.isvsvn = 9;
	c.isvprodid = 8;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "isvprodid 8 does not match policy ns/s (7)");
	c.isvprodid = 7;
	snprintf(c.signer, sizeof(c.signer), H64("6"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "mrsigner 6666666666666666... does not match policy ns/s"));
	snprintf(c.signer, sizeof(c.signer), H64("5"));
	snprintf(c.measurement, sizeof(c.measurement), H64("c"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "mrenclave cccccccccccccccc... not in policy ns/s");
	/* a debug enclave against a production policy */
	snprintf(c.measurement, sizeof(c.measurement), H64("a"));
	c.debug = 1;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "debug evidence (sgx platform) refused"));
	unload(&f);
	/* a policy naming no enclave accepts none */
	load(&f, "", "");
	c.debug = 0;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "policy ns/s names no SGX enclave (mrenclaves or signer)");
	unload(&f);
}

static void test_tdx_block(void **state)
{
	(void)state;
	struct fixture f;
	load(&f,
	     "    tdx: {mrtd: " H96("1") ", rtmr0: " H96("2") ", rtmr1: " H96("9") ", rtmr2: " H96(
		 "9") ", rtmr3: " H96("0") "}\n",
	     "");
	struct veil_claims c = hw("tdx");
	snprintf(c.measurement, sizeof(c.measurement), H96("1"));
	snprintf(c.rtmr[0], sizeof(c.rtmr[0]), H96("2"));
	snprintf(c.rtmr[1], sizeof(c.rtmr[1]), H96("9"));
	snprintf(c.rtmr[2], sizeof(c.rtmr[2]), H96("9"));
	snprintf(c.rtmr[3], sizeof(c.rtmr[3]), H96("0"));
	snprintf(c.mrowner, sizeof(c.mrowner), H96("e")); /* not named: any */
	assert_int_equal(decide(&f, &c), 0);
	snprintf(c.rtmr[3], sizeof(c.rtmr[3]), H96("3"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "rtmr3 3333333333333333... does not match policy ns/s"));
	snprintf(c.rtmr[3], sizeof(c.rtmr[3]), H96("0"));
	snprintf(c.measurement, sizeof(c.measurement), H96("4"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "mrtd 4444444444444444... does not match policy ns/s"));
	unload(&f);
	load(&f, "    mrenclaves: [" H64("a") "]\n", "");
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "policy ns/s names no TD (tdx.mrtd)");
	unload(&f);
}

static void test_snp_block(void **state)
{
	(void)state;
	struct fixture f;
	load(&f,
	     "    snp: {measurement: " H96("7") ", host_data: " H64(
		 "8") ", guest_svn_min: 2,\n"
		      "          tcb_min: {bl_spl: 3, tee_spl: 0, snp_spl: 8, microcode_spl: "
		      "115}}\n",
	     "");
	struct veil_claims c = hw("snp");
	snprintf(c.measurement, sizeof(c.measurement), H96("7"));
	snprintf(c.host_data, sizeof(c.host_data), H64("8"));
	c.guest_svn = 2;
	c.snp_policy = 0x30000; /* bit 17 (reserved, 1), no SMT, no migration agent */
	c.snp_bl_spl = 3, c.snp_snp_spl = 8, c.snp_ucode_spl = 115;
	snprintf(c.tcb_status, sizeof(c.tcb_status), "not-evaluated");
	c.snp_policy = 0x20000;
	assert_int_equal(decide(&f, &c), 0);
	c.guest_svn = 1;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "guest_svn 1 is below policy ns/s's guest_svn_min 2");
	c.guest_svn = 2;
	snprintf(c.host_data, sizeof(c.host_data), H64("9"));
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "host_data 9999999999999999... does not match policy"));
	snprintf(c.host_data, sizeof(c.host_data), H64("8"));
	/* review of issue 11, finding 3: VMPL, the guest policy and the TCB */
	c.vmpl = 1;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "vmpl 1 is not policy ns/s's 0");
	c.vmpl = 0;
	c.snp_policy = 0x20000 | (1ull << 18);
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "allows a migration agent"));
	c.snp_policy = 0x20000 | (1ull << 16);
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(
	    strstr(f.why, "allows SMT and policy ns/s does not tolerate hyperthreading"));
	c.snp_policy = 0x20000;
	c.snp_snp_spl = 7;
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why, "snp reported TCB snp_spl 7 is below policy ns/s's tcb_min 8 "
				   "(tolerate outdated-tcb to accept)");
	unload(&f);
	/* no tcb_min: the TCB is not evaluated, accepted only under outdated-tcb */
	load(&f, "    snp: {measurement: " H96("7") "}\n", "");
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "snp reported TCB not evaluated"));
	unload(&f);
	load(&f, "    snp: {measurement: " H96("7") "}\n",
	     "security:\n  attestation:\n    tolerate: [outdated-tcb, hyperthreading]\n");
	c.snp_policy = 0x20000 | (1ull << 16);
	assert_int_equal(decide(&f, &c), 0);
	unload(&f);
}

static void test_tcb_status_needs_tolerance(void **state)
{
	(void)state;
	static const struct {
		const char *status, *tolerate, *missing;
	} cases[] = {
	    {"up-to-date", "[]", NULL},
	    {"sw-hardening-needed", "[]", "software-hardening-needed"},
	    {"sw-hardening-needed", "[software-hardening-needed]", NULL},
	    {"configuration-needed", "[]", "insecure-configuration"},
	    {"configuration-needed", "[insecure-configuration]", NULL},
	    {"configuration-and-sw-hardening-needed", "[insecure-configuration]",
	     "software-hardening-needed"},
	    {"configuration-and-sw-hardening-needed",
	     "[insecure-configuration, software-hardening-needed]", NULL},
	    {"out-of-date", "[software-hardening-needed]", "outdated-tcb"},
	    {"out-of-date", "[outdated-tcb]", NULL},
	    {"out-of-date-configuration-needed", "[outdated-tcb]", "insecure-configuration"},
	    {"out-of-date-configuration-needed", "[outdated-tcb, insecure-configuration]", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fixture f;
		char sec[256];
		snprintf(
		    sec, sizeof(sec),
		    "security:\n  attestation:\n    tolerate: %s\n    ignore_advisories: ['*']\n",
		    cases[i].tolerate);
		load(&f, "    tdx: {mrtd: " H96("1") ", mrconfigid: " H96("0") "}\n", sec);
		struct veil_claims c = hw("tdx");
		snprintf(c.measurement, sizeof(c.measurement), H96("1"));
		snprintf(c.mrconfigid, sizeof(c.mrconfigid), H96("0"));
		snprintf(c.tcb_status, sizeof(c.tcb_status), "%s", cases[i].status);
		int rc = decide(&f, &c);
		if (!cases[i].missing) {
			assert_int_equal(rc, 0);
		} else {
			char want[300];
			snprintf(want, sizeof(want),
				 "tcb_status %s refused: policy ns/s does not tolerate %s",
				 cases[i].status, cases[i].missing);
			assert_string_equal(f.why, want);
		}
		/* revoked: whatever is tolerated */
		snprintf(c.tcb_status, sizeof(c.tcb_status), "revoked");
		assert_int_not_equal(decide(&f, &c), 0);
		assert_non_null(strstr(f.why, "tcb_status revoked"));
		unload(&f);
	}
}

static void test_not_evaluated_and_advisories(void **state)
{
	(void)state;
	struct fixture f;
	load(&f, "    tdx: {mrtd: " H96("1") ", mrconfigid: " H96("0") "}\n", "");
	struct veil_claims c = hw("tdx");
	snprintf(c.measurement, sizeof(c.measurement), H96("1"));
	snprintf(c.mrconfigid, sizeof(c.mrconfigid), H96("0"));
	snprintf(c.tcb_status, sizeof(c.tcb_status), "not-evaluated");
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "tcb_status not-evaluated: the CAS has no collateral"));
	unload(&f);
	load(&f, "    tdx: {mrtd: " H96("1") ", mrconfigid: " H96("0") "}\n",
	     "security:\n  attestation:\n    tolerate: [software-hardening-needed]\n"
	     "    ignore_advisories: [INTEL-SA-00289]\n");
	snprintf(c.tcb_status, sizeof(c.tcb_status), "sw-hardening-needed");
	snprintf(c.advisories, sizeof(c.advisories), "INTEL-SA-00289,INTEL-SA-00615");
	assert_int_not_equal(decide(&f, &c), 0);
	assert_string_equal(f.why,
			    "advisory INTEL-SA-00615 applies to the platform and policy ns/s "
			    "does not list it in security.attestation.ignore_advisories");
	snprintf(c.advisories, sizeof(c.advisories), "INTEL-SA-00289");
	assert_int_equal(decide(&f, &c), 0);
	/* a toleration that stands for advisories */
	snprintf(c.advisories, sizeof(c.advisories), "INTEL-SA-00289,INTEL-SA-00161");
	assert_int_not_equal(decide(&f, &c), 0);
	assert_non_null(strstr(f.why, "advisory INTEL-SA-00161 applies"));
	unload(&f);
	load(
	    &f, "    tdx: {mrtd: " H96("1") ", mrconfigid: " H96("0") "}\n",
	    "security:\n  attestation:\n    tolerate: [software-hardening-needed, hyperthreading]\n"
	    "    ignore_advisories: [INTEL-SA-00289]\n");
	assert_int_equal(decide(&f, &c), 0);
	unload(&f);
}

static void test_policy_blocks_validated(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "    tdx: {mrtd: abc}\n",
	    "    tdx: {rtmr0: " H96("1") "}\n",
	    "    tdx: {mrtd: " H96("1") ", rtmr9: " H96("1") "}\n",
	    "    snp: {measurement: " H64("1") "}\n",
	    "    signer: {isvprodid: 1}\n",
	    "    signer: {mrsigner: " H64("A") "}\n",
	    "    snp: {measurement: " H96("1") ", guest_svn_min: -1}\n",
	    /* review of issue 11: MRTD alone (the firmware any TD on it shares),
	     * a signer's key alone (every enclave it signed), a VMPL past 3 */
	    "    tdx: {mrtd: " H96("1") "}\n",
	    "    signer: {mrsigner: " H64("5") "}\n",
	    "    snp: {measurement: " H96("1") ", vmpl: 4}\n",
	    "    snp: {measurement: " H96("1") ", tcb_min: {snp_spl: 300}}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char yaml[1024];
		struct ydoc doc;
		struct veil_policy p;
		struct veil_diags d;
		snprintf(yaml, sizeof(yaml), "name: ns\nservices:\n  - name: s\n    command: a\n%s",
			 bad[i]);
		veil_diags_init(&d);
		assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
		int rc = ydoc_parse(&doc, yaml, strlen(yaml), &veil_policy_limits, &d);
		if (!rc)
			rc = veil_policy_parse(&doc, &p, &d);
		assert_int_not_equal(rc, 0);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sim),
	    cmocka_unit_test(test_sgx_mrenclave_and_signer),
	    cmocka_unit_test(test_tdx_block),
	    cmocka_unit_test(test_snp_block),
	    cmocka_unit_test(test_tcb_status_needs_tolerance),
	    cmocka_unit_test(test_not_evaluated_and_advisories),
	    cmocka_unit_test(test_policy_blocks_validated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
