/* Unit tests: the secret schema (src/policy/secret_schema.c) and the three
 * readers of a secret definition agreeing on it: `veil check` (the service
 * manifest), the policy validator (veil policy create/update and veil-cas)
 * and the CAS generating the secrets. Each case is one definition run
 * through all three; a verdict of one side that differs from the others is
 * a failure. Adversarial cases first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "veil/manifest.h"
#include "veil/policy_model.h"
#include "veil/secret_schema.h"
#include "veil/secrets.h"

/* the verdicts of the three sides on one definition; 1: accepted */
struct verdicts {
	int manifest, policy, cas;
	char why[3][512]; /* the first message of each side ("" when accepted) */
};

static void first_msg(const struct veil_diags *d, char *out, size_t cap)
{
	snprintf(out, cap, "%s", d->count ? d->msgs[0] : "");
}

/* Secret `s` of kind `kind` with the definition lines `lines` (YAML, each
 * "key: value" ending in "\n", indented by the caller's convention: none),
 * next to an x509-ca `ca` and a private-key `k` it may name. */
static struct verdicts run_three(const char *kind, const char *lines)
{
	struct verdicts v = {0};
	char yaml[4096], indented[2048] = "";
	struct veil_diags d;
	struct ydoc doc;

	/* each line indented for the manifest's list (6) or the policy's (4) */
	for (int side = 0; side < 2; side++) {
		size_t n = 0;
		indented[0] = '\0';
		for (const char *p = lines; *p;) {
			const char *nl = strchr(p, '\n');
			size_t len = nl ? (size_t)(nl - p) : strlen(p);
			n += (size_t)snprintf(indented + n, sizeof(indented) - n, "%*s%.*s\n",
					      side ? 4 : 6, "", (int)len, p);
			p += len + (nl ? 1 : 0);
		}
		veil_diags_init(&d);
		if (side == 0)
			snprintf(yaml, sizeof(yaml),
				 "apiVersion: scone/5.8\nkind: genservice\n"
				 "build: {name: a, to: r/a:1, command: a}\n"
				 "secrets:\n  global:\n"
				 "    - name: ca\n      kind: x509-ca\n"
				 "    - name: k\n      kind: private-key\n"
				 "    - name: s\n      kind: %s\n%s",
				 kind, indented);
		else
			snprintf(yaml, sizeof(yaml),
				 "name: n\nsecrets:\n"
				 "  - name: ca\n    kind: x509-ca\n"
				 "  - name: k\n    kind: private-key\n"
				 "  - name: s\n    kind: %s\n%s",
				 kind, indented);
		assert_int_equal(ydoc_init(&doc, side ? "p.yaml" : "s.yaml"), 0);
		assert_int_equal(
		    ydoc_parse(&doc, yaml, strlen(yaml), side ? &veil_policy_limits : NULL, &d), 0);
		if (side == 0) {
			struct veil_service_manifest m;
			v.manifest = veil_service_parse(&doc, &m, &d) == 0;
			first_msg(&d, v.why[0], sizeof(v.why[0]));
			/* the CAS gets the definitions as the manifest read them: the
			 * policy validator may refuse them before the CAS could */
			struct veil_diags dc;
			struct veil_secret_set set = {0};
			veil_diags_init(&dc);
			v.cas = veil_secrets_generate(m.secrets, m.secret_count, "ns", NULL, &set,
						      &dc) == 0;
			first_msg(&dc, v.why[2], sizeof(v.why[2]));
			veil_secret_set_free(&set);
			veil_diags_free(&dc);
		} else {
			struct veil_policy p;
			v.policy = veil_policy_parse(&doc, &p, &d) == 0;
			first_msg(&d, v.why[1], sizeof(v.why[1]));
		}
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
	return v;
}

/* All three sides give `accepted`, and a refusal says `want` on each. */
static void agree(const char *kind, const char *lines, int accepted, const char *want)
{
	struct verdicts v = run_three(kind, lines);
	static const char *const side[] = {"veil check", "the policy validator", "the CAS"};
	int got[] = {v.manifest, v.policy, v.cas};
	for (int i = 0; i < 3; i++) {
		if (got[i] != accepted)
			fail_msg("kind %s, %s: %s %s it (%s), want %s", kind, lines, side[i],
				 got[i] ? "accepts" : "refuses", v.why[i],
				 accepted ? "accepted" : "refused");
		if (!accepted && want && !strstr(v.why[i], want))
			fail_msg("kind %s, %s: %s says '%s', want '%s'", kind, lines, side[i],
				 v.why[i], want);
	}
}

/* The lists messages give are the tables' own: every kind named in
 * VEIL_SECRET_KINDS is in the table and every entry of the table is named
 * once; likewise the algorithms. */
static void test_message_lists_match_the_tables(void **state)
{
	char list[256] = "";
	size_t len = 0, kinds = 0;
	for (int k = VEIL_SECRET_KIND_UNKNOWN + 1; k <= VEIL_SECRET_X509_CA; k++)
		assert_non_null(veil_secret_kind_get((enum veil_secret_kind)k));
	assert_null(veil_secret_kind_get(VEIL_SECRET_KIND_UNKNOWN));
	char copy[] = VEIL_SECRET_KINDS;
	unsigned seen = 0;
	for (char *save = NULL, *name = strtok_r(copy, ", ", &save); name;
	     name = strtok_r(NULL, ", ", &save)) {
		const struct veil_secret_kind_info *k = veil_secret_kind_find(name);
		assert_non_null(k);
		assert_ptr_equal(veil_secret_kind_get(k->kind), k);
		assert_false(seen & (1u << k->kind));
		seen |= 1u << k->kind;
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
					k->name);
		kinds++;
	}
	assert_int_equal(kinds, VEIL_SECRET_X509_CA);
	assert_string_equal(list, VEIL_SECRET_KINDS);
	char algs[] = VEIL_SECRET_ALGORITHMS;
	size_t n = 0;
	for (char *save = NULL, *a = strtok_r(algs, ", ", &save); a;
	     a = strtok_r(NULL, ", ", &save)) {
		assert_true(veil_secret_algorithm_valid(a));
		n++;
	}
	assert_int_equal(n, 5);
	assert_false(veil_secret_algorithm_valid("P-521"));
	assert_false(veil_secret_algorithm_valid(NULL));
}

/* Disagreement: the policy validator took a secret with both size and
 * value, which veil check and the CAS refuse (docs/manifests.md: size
 * "cannot be combined with value"). */
static void test_size_with_value_refused_everywhere(void **state)
{
	agree("ascii", "size: 10\nvalue: abc\n", 0, "give either 'size' or 'value', not both");
	agree("binary", "size: 2\nvalue: feed\n", 0, "give either 'size' or 'value', not both");
	agree("ascii", "value: abc\n", 1, NULL);
	agree("binary", "size: 2\n", 1, NULL);
}

/* Disagreement: the policy validator took any algorithm; veil check and
 * the CAS know five (docs/manifests.md, `algorithm`). */
static void test_unknown_algorithm_refused_everywhere(void **state)
{
	agree("private-key", "algorithm: P-521\n", 0,
	      "unknown algorithm 'P-521' (" VEIL_SECRET_ALGORITHMS ")");
	agree("x509", "algorithm: p-256\n", 0, "unknown algorithm 'p-256'");
	agree("x509-ca", "algorithm: RSA-4096\n", 0, "unknown algorithm 'RSA-4096'");
	agree("private-key", "algorithm: Ed25519\n", 1, NULL);
	agree("x509", "algorithm: P-384\n", 1, NULL);
}

/* Disagreement: the CAS refused an empty common_name (saying "1 to 64
 * characters" while letting up to 256 bytes through to X.509, which then
 * failed after the key was made), veil check and the policy validator took
 * any. A certificate holds 1 to 64 characters; now all three say so. */
static void test_common_name_limits_everywhere(void **state)
{
	char line[512], cn[300] = "";
	agree("x509", "common_name: \"\"\n", 0,
	      "common_name must be " VEIL_SECRET_COMMON_NAME_FORM);
	memset(cn, 'c', 65);
	cn[65] = '\0';
	snprintf(line, sizeof(line), "common_name: %s\n", cn);
	agree("x509", line, 0, "common_name must be 1 to 64 characters");
	cn[64] = '\0';
	snprintf(line, sizeof(line), "common_name: %s\n", cn);
	agree("x509-ca", line, 1, NULL);
	/* characters, not bytes: 64 two-byte characters fit */
	for (int i = 0; i < 65; i++)
		memcpy(cn + 2 * i, "\xc3\xa9", 3); /* U+00E9, then the NUL */
	cn[128] = '\0';
	snprintf(line, sizeof(line), "common_name: %s\n", cn);
	agree("x509", line, 1, NULL);
	cn[128] = '\xc3';
	snprintf(line, sizeof(line), "common_name: %s\n", cn);
	agree("x509", line, 0, "common_name must be");
}

/* Disagreement: the CAS refused a dns entry that is neither a DNS name nor
 * an IP address (it builds the SAN by hand from it), veil check and the
 * policy validator took any string. */
static void test_dns_entries_checked_everywhere(void **state)
{
	char line[600], name[300];
	agree("x509", "dns: [\"a b\"]\n", 0, "dns entry #1 is " VEIL_SECRET_DNS_FORM);
	agree("x509", "dns: [\"\"]\n", 0, "dns entry #1 is neither");
	agree("x509", "dns: [ok.example, \"x,IP:1.2.3.4\"]\n", 0, "dns entry #2 is neither");
	agree("x509-ca", "dns: [\"x/y\"]\n", 0, "dns entry #1 is neither");
	agree("x509", "dns: [\"::1\", 1.2.3.4, \"*.x.example\", svc_a-1.example]\n", 1, NULL);
	agree("x509", "dns: single.example\n", 1, NULL);
	memset(name, 'a', 254);
	name[254] = '\0';
	snprintf(line, sizeof(line), "dns: [%s]\n", name);
	agree("x509", line, 0, "dns entry #1 is neither");
	name[253] = '\0';
	snprintf(line, sizeof(line), "dns: [%s]\n", name);
	agree("x509", line, 1, NULL);
}

/* Disagreement: the CAS refused a definition named namespace_ca (the name
 * of the CA it makes on demand), veil check and the policy validator took
 * it. Naming it as an issuer stays allowed everywhere. */
static void test_namespace_ca_name_reserved_everywhere(void **state)
{
	struct verdicts v = run_three("x509-ca", "");
	assert_true(v.manifest && v.policy && v.cas);
	/* the case under test defines "namespace_ca" itself: a second secret
	 * list with it instead of "s" */
	static const char *const svc =
	    "apiVersion: scone/5.8\nkind: genservice\nbuild: {name: a, to: r/a:1, command: a}\n"
	    "secrets:\n  global:\n    - name: namespace_ca\n      kind: x509-ca\n";
	static const char *const pol =
	    "name: n\nsecrets:\n  - name: namespace_ca\n    kind: x509-ca\n";
	struct veil_diags d;
	struct ydoc doc;
	struct veil_service_manifest m;
	struct veil_policy p;
	struct veil_secret_set set = {0};

	veil_diags_init(&d);
	assert_int_equal(ydoc_init(&doc, "s.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, svc, strlen(svc), NULL, &d), 0);
	assert_int_equal(veil_service_parse(&doc, &m, &d), VEIL_EINVAL);
	assert_int_equal(d.count, 1);
	assert_string_equal(d.msgs[0],
			    "s.yaml:6:13: secrets.global entry: the name 'namespace_ca' is "
			    "reserved for the namespace CA" VEIL_NAMESPACE_CA_WHY);
	veil_diags_free(&d);
	veil_diags_init(&d);
	assert_int_equal(veil_secrets_generate(m.secrets, m.secret_count, "ns", NULL, &set, &d),
			 VEIL_EINVAL);
	assert_string_equal(d.msgs[0], "secret 'namespace_ca': the name is reserved for the "
				       "namespace CA" VEIL_NAMESPACE_CA_WHY);
	ydoc_free(&doc);
	veil_diags_free(&d);

	veil_diags_init(&d);
	assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, pol, strlen(pol), &veil_policy_limits, &d), 0);
	assert_int_equal(veil_policy_parse(&doc, &p, &d), VEIL_EINVAL);
	assert_int_equal(d.count, 1);
	assert_string_equal(d.msgs[0], "p.yaml:3:11: secrets: the name 'namespace_ca' is reserved "
				       "for the namespace CA" VEIL_NAMESPACE_CA_WHY);
	ydoc_free(&doc);
	veil_diags_free(&d);

	agree("x509", "issuer: namespace_ca\n", 1, NULL);
}

/* The policy validator and the CAS give `accepted`, a refusal saying `want`.
 * veil check accepts: a service manifest may name another service's global
 * secret, which derivation checks (docs/manifests.md 5.5). */
static void agree_on_references(const char *kind, const char *lines, int accepted, const char *want)
{
	struct verdicts v = run_three(kind, lines);
	if (!v.manifest)
		fail_msg("kind %s, %s: veil check refuses it (%s)", kind, lines, v.why[0]);
	if (v.policy != accepted || v.cas != accepted)
		fail_msg("kind %s, %s: the policy validator %s it (%s), the CAS %s it (%s)", kind,
			 lines, v.policy ? "accepts" : "refuses", v.why[1],
			 v.cas ? "accepts" : "refuses", v.why[2]);
	if (!accepted && (!strstr(v.why[1], want) || !strstr(v.why[2], want)))
		fail_msg("kind %s, %s: '%s' / '%s', want '%s'", kind, lines, v.why[1], v.why[2],
			 want);
}

/* Disagreement: the policy validator did not look at private_key and
 * issuer at all; the CAS refused a reference to nothing, to an imported
 * secret, to a kind that cannot serve, to the namespace CA's key, and
 * cycles, all at generation. docs/manifests.md (11.8) promises that the
 * client refuses what the CAS would: both now resolve with
 * veil_secret_ref_resolve and order with veil_secret_order. */
static void test_references_checked_by_validator_and_cas(void **state)
{
	agree_on_references("x509", "issuer: k\n", 0,
			    "issuer 'k' is of kind 'private-key', not x509-ca");
	agree_on_references("x509", "issuer: nope\n", 0, "issuer 'nope' is not defined");
	agree_on_references("x509", "private_key: nope\n", 0, "private_key 'nope' is not defined");
	agree_on_references("x509", "private_key: namespace_ca\n", 0,
			    "private_key cannot be the namespace CA's key");
	agree_on_references("public-key", "private_key: s\n", 0,
			    "private_key 's' is of kind 'public-key', which holds no private key");
	agree_on_references("x509-ca", "issuer: s\n", 0,
			    "'s': their private_key/issuer references form a cycle");
	agree_on_references("public-key", "private_key: ca\n", 1, NULL);
	/* an imported secret cannot issue, in the validator's words at the entry */
	static const char *const pol = "name: n\nsecrets:\n"
				       "  - name: imp\n    import: {namespace: other}\n"
				       "  - name: s\n    kind: x509\n    issuer: imp\n";
	struct veil_diags d;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_secret_set set = {0};
	veil_diags_init(&d);
	assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, pol, strlen(pol), &veil_policy_limits, &d), 0);
	assert_int_equal(veil_policy_parse(&doc, &p, &d), VEIL_EINVAL);
	assert_int_equal(d.count, 1);
	assert_string_equal(d.msgs[0], "p.yaml:5:5: secrets: 's': issuer 'imp' is imported; only "
				       "x509-ca secrets generated in this policy can issue");
	veil_diags_free(&d);
	veil_diags_init(&d);
	struct veil_secret defs[] = {{.name = "imp", .import_namespace = "other"},
				     {.name = "s", .kind = "x509", .issuer = "imp"}};
	assert_int_equal(veil_secrets_generate(defs, 2, "ns", NULL, &set, &d), VEIL_EINVAL);
	assert_string_equal(d.msgs[0], "secret 's': issuer 'imp' is imported; only x509-ca "
				       "secrets generated in this policy can issue");
	ydoc_free(&doc);
	veil_diags_free(&d);
	agree_on_references("x509", "private_key: k\nissuer: ca\n", 1, NULL);
	agree_on_references("x509", "issuer: namespace_ca\n", 1, NULL);
}

/* "value: |" and the PEM of a fresh key of OpenSSL type `type` (a curve for
 * EC), as definition lines */
static void pem_value_lines(const char *type, const char *curve, char *out, size_t cap)
{
	EVP_PKEY *k = curve ? EVP_PKEY_Q_keygen(NULL, NULL, type, curve)
			    : EVP_PKEY_Q_keygen(NULL, NULL, type);
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	assert_non_null(k);
	assert_true(b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
	long n = BIO_get_mem_data(b, &data);
	size_t len = (size_t)snprintf(out, cap, "value: |\n");
	for (long i = 0; i < n && len + 4 < cap; i++) {
		if (i == 0 || data[i - 1] == '\n')
			len += (size_t)snprintf(out + len, cap - len, "  ");
		out[len++] = data[i];
	}
	out[len] = '\0';
	BIO_free(b);
	EVP_PKEY_free(k);
}

/* Disagreement: a private-key secret's value was read only by the CAS (an
 * unencrypted PEM key of a supported algorithm, of `algorithm` when given);
 * veil check and the policy validator took any text, so a broken key was
 * found at upload. docs/manifests.md: value "(a PEM key)". */
static void test_private_key_value_checked_everywhere(void **state)
{
	char lines[4096], with_alg[4200];
	agree("private-key", "value: notapem\n", 0,
	      "the value is not an unencrypted PEM private key of a supported algorithm");
	pem_value_lines("EC", "P-256", lines, sizeof(lines));
	agree("private-key", lines, 1, NULL);
	snprintf(with_alg, sizeof(with_alg), "algorithm: P-384\n%s", lines);
	agree("private-key", with_alg, 0, "the value is a P-256 key, not P-384");
	snprintf(with_alg, sizeof(with_alg), "algorithm: P-256\n%s", lines);
	agree("private-key", with_alg, 1, NULL);
	pem_value_lines("ED25519", NULL, lines, sizeof(lines));
	agree("private-key", lines, 1, NULL);
	pem_value_lines("EC", "secp521r1", lines, sizeof(lines));
	agree("private-key", lines, 0, "not an unencrypted PEM private key of a supported");
}

/* One placeholder with `suffix` of a secret of `kind`, through veil check
 * (a manifest variable), the policy validator (a service's environment) and
 * the CAS (rendering it): all accept, or all refuse saying `want`. */
static void placeholder_agrees(const char *kind, const char *suffix, int accepted, const char *want)
{
	char yaml[1024], ph[64], why[3][512] = {"", "", ""};
	int got[3];
	struct veil_diags d;
	struct ydoc doc;
	struct veil_service_manifest m;
	struct veil_policy p;
	struct veil_secret_set set = {0};
	char *out = NULL;

	/* what the kind needs, and the key a public-key names */
	const char *extra = !strcmp(kind, "explicit")     ? "value: v"
			    : !strcmp(kind, "public-key") ? "private_key: k"
							  : "migrate: false";
	snprintf(ph, sizeof(ph), "$$SCONE::s%s%s$$", *suffix ? ":" : "", suffix);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: scone/5.8\nkind: genservice\n"
		 "build: {name: a, to: r/a:1, command: a}\n"
		 "environment:\n  local:\n    - name: A\n      value: \"%s\"\n"
		 "secrets:\n  global:\n    - name: k\n      kind: private-key\n"
		 "    - name: s\n      kind: %s\n      %s\n",
		 ph, kind, extra);
	veil_diags_init(&d);
	assert_int_equal(ydoc_init(&doc, "s.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), NULL, &d), 0);
	got[0] = veil_service_parse(&doc, &m, &d) == 0;
	first_msg(&d, why[0], sizeof(why[0]));
	veil_diags_free(&d);

	veil_diags_init(&d);
	assert_int_equal(veil_secrets_generate(m.secrets, m.secret_count, "ns", NULL, &set, &d), 0);
	got[2] = veil_secret_render(ph, &set, &out, &d) == 0;
	first_msg(&d, why[2], sizeof(why[2]));
	veil_secure_strfree(out);
	veil_secret_set_free(&set);
	veil_diags_free(&d);
	ydoc_free(&doc);

	snprintf(yaml, sizeof(yaml),
		 "name: n\nservices:\n  - name: svc\n    command: a\n"
		 "    environment: {A: \"%s\"}\n"
		 "secrets:\n  - name: k\n    kind: private-key\n"
		 "  - name: s\n    kind: %s\n    %s\n",
		 ph, kind, extra);
	veil_diags_init(&d);
	assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), &veil_policy_limits, &d), 0);
	got[1] = veil_policy_parse(&doc, &p, &d) == 0;
	first_msg(&d, why[1], sizeof(why[1]));
	veil_diags_free(&d);
	ydoc_free(&doc);

	for (int i = 0; i < 3; i++)
		if (got[i] != accepted || (!accepted && !strstr(why[i], want)))
			fail_msg("%s of kind %s: side %d %s it ('%s'), want %s '%s'", ph, kind, i,
				 got[i] ? "accepts" : "refuses", why[i],
				 accepted ? "accepted" : "refused", want ? want : "");
}

/* Disagreement: a placeholder suffix that does not fit its secret's kind
 * ($$SCONE::token:crt$$ of an ascii secret) passed veil check and the policy
 * validator and failed every attestation, when the CAS rendered it. The
 * schema's suffix rule (veil_placeholder_fits, from the kind table) is now
 * checked by all three. */
static void test_placeholder_suffix_fits_kind_everywhere(void **state)
{
	placeholder_agrees("ascii", "crt", 0,
			   "suffix 'crt' does not fit secret 's' of kind 'ascii' (it fits x509, "
			   "x509-ca)");
	placeholder_agrees("binary", "pem", 0, "suffix 'pem' does not fit secret 's'");
	placeholder_agrees("private-key", "chain", 0, "(it fits x509, x509-ca)");
	placeholder_agrees("public-key", "key", 0, "(it fits private-key, x509, x509-ca)");
	placeholder_agrees("x509", "hex", 0, "(it fits ascii, binary, explicit)");
	placeholder_agrees("ascii", "hex", 1, NULL);
	placeholder_agrees("explicit", "base64url", 1, NULL);
	placeholder_agrees("binary", "", 1, NULL);
	placeholder_agrees("x509", "chain", 1, NULL);
	placeholder_agrees("x509-ca", "key", 1, NULL);
	placeholder_agrees("private-key", "publickey", 1, NULL);
	placeholder_agrees("public-key", "pem", 1, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_lists_match_the_tables),
	    cmocka_unit_test(test_size_with_value_refused_everywhere),
	    cmocka_unit_test(test_unknown_algorithm_refused_everywhere),
	    cmocka_unit_test(test_common_name_limits_everywhere),
	    cmocka_unit_test(test_dns_entries_checked_everywhere),
	    cmocka_unit_test(test_namespace_ca_name_reserved_everywhere),
	    cmocka_unit_test(test_references_checked_by_validator_and_cas),
	    cmocka_unit_test(test_placeholder_suffix_fits_kind_everywhere),
	    cmocka_unit_test(test_private_key_value_checked_everywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
