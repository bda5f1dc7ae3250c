/* tests/e2e/hsm.sh's look into a PKCS#11 token, as an attacker with the
 * PIN would: lists the secret keys' labels with their CKA_TOKEN,
 * CKA_SENSITIVE and CKA_EXTRACTABLE, and tries to read each one's CKA_VALUE
 * (C_GetAttributeValue must refuse: CKR_ATTRIBUTE_SENSITIVE), printing what
 * it got. Built by the test: cc -I/usr/include/p11-kit-1 p11probe.c.
 * Usage: p11probe MODULE TOKEN-LABEL (the PIN in $VEIL_PKCS11_PIN) */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;

static const char *yes_no(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t)
{
	CK_BBOOL b = 0;
	CK_ATTRIBUTE a = {t, &b, sizeof(b)};
	return f->C_GetAttributeValue(s, h, &a, 1) != CKR_OK ? "?" : b ? "true" : "false";
}

int main(int argc, char **argv)
{
	const char *pin = getenv("VEIL_PKCS11_PIN");
	if (argc != 3 || !pin) {
		fprintf(stderr, "usage: VEIL_PKCS11_PIN=... p11probe MODULE TOKEN\n");
		return 2;
	}
	void *m = dlopen(argv[1], RTLD_NOW);
	CK_C_GetFunctionList get = m ? (CK_C_GetFunctionList)dlsym(m, "C_GetFunctionList") : NULL;
	if (!get || get(&f) != CKR_OK || f->C_Initialize(NULL) != CKR_OK) {
		fprintf(stderr, "p11probe: cannot load %s\n", argv[1]);
		return 1;
	}
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_SESSION_HANDLE s = 0;
	bool found = false;
	if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		return 1;
	for (CK_ULONG i = 0; i < n && !found; i++) {
		CK_TOKEN_INFO ti;
		size_t l = strlen(argv[2]);
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && l <= 32 &&
		    !memcmp(ti.label, argv[2], l) && (l == 32 || ti.label[l] == ' ')) {
			found = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s) ==
				CKR_OK;
		}
	}
	if (!found || f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_OK) {
		fprintf(stderr, "p11probe: token %s: no session or login\n", argv[2]);
		return 1;
	}
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE h[32];
	CK_ULONG count = 0;
	if (f->C_FindObjectsInit(s, &t, 1) != CKR_OK ||
	    f->C_FindObjects(s, h, 32, &count) != CKR_OK)
		return 1;
	f->C_FindObjectsFinal(s);
	for (CK_ULONG i = 0; i < count; i++) {
		char label[129] = "";
		CK_ATTRIBUTE la = {CKA_LABEL, label, sizeof(label) - 1};
		if (f->C_GetAttributeValue(s, h[i], &la, 1) == CKR_OK)
			label[la.ulValueLen < sizeof(label) ? la.ulValueLen : 0] = 0;
		unsigned char value[64];
		CK_ATTRIBUTE va = {CKA_VALUE, value, sizeof(value)};
		CK_RV rv = f->C_GetAttributeValue(s, h[i], &va, 1);
		printf("key %s token=%s sensitive=%s extractable=%s value=%s\n", label,
		       yes_no(s, h[i], CKA_TOKEN), yes_no(s, h[i], CKA_SENSITIVE),
		       yes_no(s, h[i], CKA_EXTRACTABLE),
		       rv == CKR_ATTRIBUTE_SENSITIVE ? "CKR_ATTRIBUTE_SENSITIVE"
		       : rv == CKR_OK                ? "READ"
						     : "refused");
	}
	f->C_Logout(s);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return 0;
}
