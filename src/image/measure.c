#include <dirent.h>
#include <fnmatch.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "veil/image.h"

#define MAX_FILES 100000

void veil_measurement_free(struct veil_measurement *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->file_count; i++)
		free(m->files[i].path);
	free(m->files);
	for (size_t i = 0; i < m->runtime_file_count; i++)
		free(m->runtime_files[i].path);
	free(m->runtime_files);
	for (size_t i = 0; i < m->exclude_count; i++)
		free(m->exclude[i]);
	free(m->exclude);
	free(m->program);
	free(m->name);
	free(m->image);
	free(m->command);
	free(m->pwd);
	free(m->manifest);
	for (size_t i = 0; i < m->encrypted_count; i++)
		free(m->encrypted[i]);
	free(m->encrypted);
	free(m->encrypted_dir);
	memset(m, 0, sizeof(*m));
}

struct walker {
	struct veil_measurement *m;
	size_t cap;
	struct veil_diags *d;
	const char *copy_item; /* as written in the manifest, for messages */
	int failed;
};

static int add_file(struct walker *w, const char *src, const char *image_path, mode_t mode)
{
	if (!veil_utf8_valid(image_path, strlen(image_path))) {
		veil_diag(w->d, "copy '%s': file name '%s' is not valid UTF-8", w->copy_item, src);
		return VEIL_EINVAL;
	}
	for (const char *p = image_path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			veil_diag(w->d, "copy '%s': file name '%s' holds a control character",
				  w->copy_item, src);
			return VEIL_EINVAL;
		}
	if (w->m->file_count >= MAX_FILES) {
		veil_diag(w->d, "copy: more than %d files", MAX_FILES);
		return VEIL_ELIMIT;
	}
	if (w->m->file_count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct veil_file_entry *f = realloc(w->m->files, cap * sizeof(*f));
		if (!f)
			return VEIL_ENOMEM;
		w->m->files = f;
		w->cap = cap;
	}
	struct veil_file_entry *e = &w->m->files[w->m->file_count];
	memset(e, 0, sizeof(*e));
	if (!(e->path = strdup(image_path)))
		return VEIL_ENOMEM;
	/* Modes are normalised so the record does not depend on the builder's umask. */
	e->mode = (mode & 0111) ? 0755 : 0644;
	w->m->file_count++;
	return veil_sha256_file(src, e->sha256, w->d);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct walker *w, const char *src, const char *image_path, int depth)
{
	struct stat st;
	if (lstat(src, &st) < 0) {
		if (errno == ENOENT && depth == 0)
			return VEIL_ENOENT; /* the caller names the manifest entry */
		if (errno == ENOENT)
			veil_diag(w->d, "copy: '%s' does not exist (looked for %s)", w->copy_item,
				  src);
		else
			veil_diag(w->d, "copy: '%s': %s", src, strerror(errno));
		return VEIL_ENOENT;
	}
	if (S_ISLNK(st.st_mode)) {
		veil_diag(w->d, "copy: '%s' is a symbolic link; copy the file it points to", src);
		return VEIL_EINVAL;
	}
	if (S_ISREG(st.st_mode))
		return add_file(w, src, image_path, st.st_mode);
	if (!S_ISDIR(st.st_mode)) {
		veil_diag(w->d, "copy: '%s' is neither a file nor a folder", src);
		return VEIL_EINVAL;
	}
	if (depth > 32) {
		veil_diag(w->d, "copy: '%s' is nested more than 32 folders deep", src);
		return VEIL_ELIMIT;
	}
	DIR *dir = opendir(src);
	if (!dir) {
		veil_diag(w->d, "copy: cannot open folder '%s': %s", src, strerror(errno));
		return VEIL_EIO;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **p = realloc(names, cap * sizeof(*p));
			if (!p) {
				rc = VEIL_ENOMEM;
				break;
			}
			names = p;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = VEIL_ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (!rc)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		char *s = veil_path_join(src, names[i]);
		char *t = veil_path_join(image_path, names[i]);
		rc = s && t ? walk(w, s, t, depth + 1) : VEIL_ENOMEM;
		free(s);
		free(t);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct veil_file_entry *)a)->path,
		      ((const struct veil_file_entry *)b)->path);
}

static int entry_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct veil_file_entry *const *)a)->path,
		      (*(const struct veil_file_entry *const *)b)->path);
}

int veil_fileset_root(const struct veil_file_entry *files, size_t count,
		      char out_hex[static 2 * VEIL_SHA256_SIZE + 1])
{
	/* the root is defined over the files sorted by path, whatever the input order */
	const struct veil_file_entry **sorted = malloc((count + 1) * sizeof(*sorted));
	if (!sorted)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < count; i++)
		sorted[i] = &files[i];
	if (count)
		qsort(sorted, count, sizeof(*sorted), entry_ptr_cmp);
	struct veil_buf b;
	veil_buf_init(&b, 0);
	veil_buf_puts(&b, "veil-fileset-v1\n");
	char hex[2 * VEIL_SHA256_SIZE + 1];
	for (size_t i = 0; i < count; i++) {
		veil_hex(sorted[i]->sha256, VEIL_SHA256_SIZE, hex);
		veil_buf_printf(&b, "%s %04o %s\n", hex, sorted[i]->mode, sorted[i]->path);
	}
	free(sorted);
	uint8_t root[VEIL_SHA256_SIZE];
	int rc = b.failed ? VEIL_ENOMEM : veil_sha256(b.data, b.size, root);
	if (!rc)
		veil_hex(root, VEIL_SHA256_SIZE, out_hex);
	veil_buf_free(&b);
	return rc;
}

/* Collapse "//", "/./" and trailing "/" (".." is refused before). */
static void clean_path(char *s)
{
	char *w = s;
	const char *r = s;
	int absolute = *s == '/';
	while (*r) {
		while (*r == '/')
			r++;
		size_t n = strcspn(r, "/");
		if (n == 0)
			break;
		if (!(n == 1 && r[0] == '.')) {
			if (w != s || absolute)
				*w++ = '/';
			memmove(w, r, n);
			w += n;
		}
		r += n;
	}
	if (w == s)
		*w++ = absolute ? '/' : '.';
	*w = '\0';
}

static int valid_copy_item(const char *s)
{
	if (!*s || s[0] == '/')
		return 0;
	/* no ".." component */
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

/* lstat() in walk() sees only the last component: a symlinked folder inside a
 * copy entry ("ext/secret.txt" with ext -> ../outside) would pull in files
 * from outside the manifest's folder. */
static int no_symlinked_parent(const char *dir, const char *rel, const char *item,
			       struct veil_diags *d)
{
	char prefix[PATH_MAX];
	for (const char *p = rel; (p = strchr(p, '/')); p++) {
		int n = snprintf(prefix, sizeof(prefix), "%s/%.*s", dir, (int)(p - rel), rel);
		if (n < 0 || (size_t)n >= sizeof(prefix))
			return VEIL_ELIMIT;
		struct stat st;
		if (lstat(prefix, &st) == 0 && S_ISLNK(st.st_mode)) {
			veil_diag(
			    d, "copy '%s': '%s' is a symbolic link; copy the folder it points to",
			    item, prefix);
			return VEIL_EINVAL;
		}
	}
	return 0;
}

char *veil_default_runtime_path(void)
{
	const char *env = getenv("VEIL_RUNTIME");
	if (env && *env)
		return strdup(env);
	char *dir = veil_self_dir();
	if (!dir)
		return NULL;
	char *p = veil_path_join(dir, "veil-run");
	free(dir);
	return p;
}

int veil_measure_service(const struct veil_service_manifest *sm, const char *manifest_dir,
			 const char *runtime_path, struct veil_measurement *out,
			 struct veil_diags *d)
{
	struct veil_measurement m = {0};
	struct walker w = {.m = &m, .d = d};
	int rc = VEIL_ENOMEM;
	const struct veil_build *b = &sm->build;
	if (!(m.name = strdup(b->name)) || !(m.image = strdup(b->to)) ||
	    !(m.command = strdup(b->command)) || !(m.pwd = strdup(b->pwd)))
		goto out;
	clean_path(m.pwd);
	uint8_t h[VEIL_SHA256_SIZE];
	rc = runtime_path ? veil_sha256_file(runtime_path, h, d) : 0;
	if (rc) {
		veil_diag(d,
			  "cannot measure the runtime '%s' (build veil-run, or set VEIL_RUNTIME)",
			  runtime_path);
		goto out;
	}
	if (runtime_path)
		veil_hex(h, sizeof(h), m.runtime_sha256);
	for (size_t i = 0; i < b->copy_count; i++) {
		const char *item = b->copy[i];
		w.copy_item = item;
		if (!valid_copy_item(item)) {
			veil_diag_at(d, sm->file, b->copy_pos.line, b->copy_pos.col,
				     "copy: '%s' must be a path relative to the manifest's folder "
				     "without '..'",
				     item);
			rc = VEIL_EINVAL;
			goto out;
		}
		char clean[PATH_MAX];
		if (snprintf(clean, sizeof(clean), "%s", item) >= (int)sizeof(clean)) {
			veil_diag(d, "copy: '%s' is too long", item);
			rc = VEIL_ELIMIT;
			goto out;
		}
		clean_path(clean);
		const char *rel = clean;
		if ((rc = no_symlinked_parent(manifest_dir, rel, item, d)))
			goto out;
		char *src = veil_path_join(manifest_dir, rel);
		char *dst = strcmp(rel, ".") ? veil_path_join(m.pwd, rel) : strdup(m.pwd);
		rc = src && dst ? walk(&w, src, dst, 0) : VEIL_ENOMEM;
		if (rc == VEIL_ENOENT)
			veil_diag_at(d, sm->file, b->copy_pos.line, b->copy_pos.col,
				     "copy file '%s' not found next to the manifest", item);
		free(src);
		free(dst);
		if (rc)
			goto out;
	}
	if (m.file_count)
		qsort(m.files, m.file_count, sizeof(*m.files), entry_cmp);
	for (size_t i = 1; i < m.file_count; i++)
		if (!strcmp(m.files[i - 1].path, m.files[i].path)) {
			veil_diag_at(d, sm->file, b->copy_pos.line, b->copy_pos.col,
				     "copy: '%s' is copied twice", m.files[i].path);
			rc = VEIL_EINVAL;
			goto out;
		}
	rc = veil_fileset_root(m.files, m.file_count, m.file_set_root);
	if (rc)
		goto out;
	/* the injection files' folders: the chart mounts each as a memory
	 * volume (src/deploy/helm.c) and veil-run places the files there at
	 * start, so they are not part of the image's measurement record (a
	 * file in "/", which the chart refuses, is excluded alone) */
	if (sm->inject_count && !(m.exclude = calloc(sm->inject_count, sizeof(*m.exclude)))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < sm->inject_count; i++) {
		char *dir = veil_dirname(sm->inject[i].path);
		if (dir && !strcmp(dir, "/")) {
			free(dir);
			dir = strdup(sm->inject[i].path);
		}
		if (!(m.exclude[m.exclude_count++] = dir)) {
			rc = VEIL_ENOMEM;
			goto out;
		}
	}
	/* what the command execs outside pwd (issue 9, H1); veil-run's own
	 * measurement of its folder (runtime_path NULL) has no command */
	if (runtime_path) {
		const char *root = getenv("VEIL_IMAGE_ROOT");
		rc = veil_measure_runtime_files(root, m.command, &m.program, &m.runtime_files,
						&m.runtime_file_count, d);
		if (rc)
			goto out;
		if (m.runtime_file_count)
			qsort(m.runtime_files, m.runtime_file_count, sizeof(*m.runtime_files),
			      entry_cmp);
	}
	*out = m;
	memset(&m, 0, sizeof(m));
out:
	veil_measurement_free(&m);
	return rc;
}

struct ynode *veil_file_entries_node(struct yarena *a, const struct veil_file_entry *f, size_t n)
{
	struct ynode *seq = ynew_seq(a);
	for (size_t i = 0; i < n; i++) {
		struct ynode *e = ynew_map(a);
		char hex[2 * VEIL_SHA256_SIZE + 1], mode[8];
		veil_hex(f[i].sha256, VEIL_SHA256_SIZE, hex);
		snprintf(mode, sizeof(mode), "%04o", f[i].mode);
		ymap_put_str(a, e, "path", f[i].path);
		ymap_put_str(a, e, "mode", mode);
		ymap_put_str(a, e, "sha256", hex);
		yseq_push(a, seq, e);
	}
	return seq;
}

int veil_runtime_list(const struct veil_measurement *m, struct veil_buf *out)
{
	/* the files to copy while veil-run attests, the program (the most
	 * bytes) first; folders and absent paths are not copied */
	if (m->program)
		veil_buf_printf(out, "%s\n", m->program);
	for (size_t i = 0; m->program && i < m->runtime_file_count; i++) {
		const char *p = m->runtime_files[i].path;
		if (m->runtime_files[i].mode && p[strlen(p) - 1] != '/' && strcmp(p, m->program))
			veil_buf_printf(out, "%s\n", p);
	}
	return out->failed ? VEIL_ENOMEM : 0;
}

int veil_measurement_write(const struct veil_measurement *m, const char *target,
			   const char *manifest_data, size_t manifest_size, char **out_dir,
			   struct veil_diags *d)
{
	struct ydoc doc;
	struct veil_buf out;
	char *images = veil_path_join(target, "images");
	char *dir = images ? veil_path_join(images, m->name) : NULL;
	char *rec = dir ? veil_path_join(dir, "measurement.yaml") : NULL;
	char *man = dir ? veil_path_join(dir, "service.yaml") : NULL;
	char *pre = dir ? veil_path_join(dir, "runtime-files") : NULL;
	struct veil_buf list;
	veil_buf_init(&out, 0);
	veil_buf_init(&list, 0);
	int rc = ydoc_init(&doc, "measurement");
	if (rc || !rec || !man || !pre) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	struct yarena *a = doc.arena;
	struct ynode *root = ynew_map(a), *rt = ynew_map(a);
	ymap_put(a, root, "veil_measurement", ynew_int(a, 1));
	ymap_put_str(a, root, "name", m->name);
	ymap_put_str(a, root, "image", m->image);
	ymap_put_str(a, root, "command", m->command);
	ymap_put_str(a, root, "pwd", m->pwd);
	if (m->manifest)
		ymap_put_str(a, root, "manifest", m->manifest);
	ymap_put_str(a, rt, "sha256", m->runtime_sha256);
	ymap_put(a, root, "runtime", rt);
	ymap_put_str(a, root, "file_set_root", m->file_set_root);
	if (m->image_root[0])
		ymap_put_str(a, root, "image_root", m->image_root);
	ymap_put(a, root, "files", veil_file_entries_node(a, m->files, m->file_count));
	if (m->program) {
		ymap_put_str(a, root, "program", m->program);
		ymap_put(a, root, "runtime_files",
			 veil_file_entries_node(a, m->runtime_files, m->runtime_file_count));
	}
	if (m->code_key_id[0]) {
		struct ynode *enc = ynew_map(a), *fl = ynew_seq(a);
		ymap_put_str(a, enc, "key_id", m->code_key_id);
		for (size_t i = 0; i < m->encrypted_count; i++)
			yseq_push(a, fl, ynew_str(a, m->encrypted[i]));
		ymap_put(a, enc, "files", fl);
		ymap_put(a, root, "encryption", enc);
	}
	if ((rc = veil_runtime_list(m, &list)))
		goto out;
	/* a tree built through a failed allocation is not a record */
	if (yarena_failed(a)) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = yemit(root, &out)))
		goto out;
	if ((rc = veil_mkdirs(dir, 0755, d)))
		goto out;
	if ((rc = veil_write_file(man, manifest_data, manifest_size, 0644, d)))
		goto out;
	if ((rc = veil_write_file(rec, out.data, out.size, 0644, d)))
		goto out;
	if (list.failed) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = veil_write_file(pre, list.data ? list.data : "", list.size, 0644, d)))
		goto out;
	if (out_dir) {
		*out_dir = dir;
		dir = NULL;
	}
out:
	ydoc_free(&doc);
	veil_buf_free(&out);
	veil_buf_free(&list);
	free(images);
	free(dir);
	free(rec);
	free(man);
	free(pre);
	return rc;
}

int veil_measurement_parse(const struct ydoc *doc, struct veil_measurement *out,
			   struct veil_diags *d)
{
	static const char *const keys[] = {
	    "veil_measurement", "name",       "image",         "command", "pwd",
	    "manifest",         "runtime",    "file_set_root", "files",   "program",
	    "runtime_files",    "image_root", "encryption",    NULL};
	static const char *const fkeys[] = {"path", "mode", "sha256", NULL};
	struct veil_measurement m = {0};
	struct yctx c = {.file = doc->file, .d = d, .arena = doc->arena};
	const struct ynode *root = doc->root;
	int rc = VEIL_EINVAL;
	if (yexpect(&c, root, YT_MAP, "a measurement record"))
		goto out;
	ycheck_keys(&c, root, keys, "the measurement record");
	unsigned long long version = 0;
	if (yget_uint(&c, root, "veil_measurement", 1000, &version, "record") != 1 ||
	    version != 1) {
		yerr(&c, root, "not a version 1 veil measurement record");
		goto out;
	}
	const char *name = yget_str(&c, root, "name", 1, "record");
	const char *image = yget_str(&c, root, "image", 1, "record");
	const char *command = yget_str(&c, root, "command", 1, "record");
	const char *pwd = yget_str(&c, root, "pwd", 1, "record");
	const char *fsr = yget_str(&c, root, "file_set_root", 1, "record");
	const struct ynode *rt = yget_coll(&c, root, "runtime", YT_MAP, 1, "record");
	const char *rts = rt ? yget_str(&c, rt, "sha256", 1, "record runtime") : NULL;
	const struct ynode *files = yget_coll(&c, root, "files", YT_SEQ, 0, "record");
	uint8_t tmp[VEIL_SHA256_SIZE];
	if (c.errors || veil_unhex(fsr, tmp, sizeof(tmp)) || veil_unhex(rts, tmp, sizeof(tmp))) {
		yerr(&c, root,
		     "measurement record is incomplete or has malformed hashes; run "
		     "'veil apply -f service.yaml' again");
		goto out;
	}
	m.name = strdup(name);
	m.image = strdup(image);
	m.command = strdup(command);
	m.pwd = strdup(pwd);
	const char *manifest = yget_str(&c, root, "manifest", 0, "record");
	if (manifest)
		m.manifest = strdup(manifest);
	snprintf(m.runtime_sha256, sizeof(m.runtime_sha256), "%s", rts);
	snprintf(m.file_set_root, sizeof(m.file_set_root), "%s", fsr);
	const char *ir = yget_str(&c, root, "image_root", 0, "record");
	if (ir && (strlen(ir) != 2 * VEIL_SHA256_SIZE || veil_unhex(ir, tmp, sizeof(tmp)))) {
		yerr(&c, ymap_get(root, "image_root"), "image_root must be 64 hex digits");
		goto out;
	}
	if (ir)
		snprintf(m.image_root, sizeof(m.image_root), "%s", ir);
	if (files && files->count) {
		m.files = calloc(files->count, sizeof(*m.files));
		if (!m.files) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < files->count; i++) {
			const struct ynode *f = files->items[i];
			if (yexpect(&c, f, YT_MAP, "a files entry"))
				goto out;
			ycheck_keys(&c, f, fkeys, "a files entry");
			const char *p = yget_str(&c, f, "path", 1, "files entry");
			const char *mode = yget_str(&c, f, "mode", 1, "files entry");
			const char *h = yget_str(&c, f, "sha256", 1, "files entry");
			if (!p || !mode || veil_unhex(h, m.files[i].sha256, VEIL_SHA256_SIZE)) {
				yerr(&c, f, "malformed files entry");
				goto out;
			}
			m.files[i].path = strdup(p);
			m.files[i].mode = (unsigned)strtoul(mode, NULL, 8);
			m.file_count++;
		}
	}
	const char *program = yget_str(&c, root, "program", 0, "record");
	const struct ynode *rfiles = yget_coll(&c, root, "runtime_files", YT_SEQ, 0, "record");
	if (program && !(m.program = strdup(program))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (rfiles && rfiles->count) {
		m.runtime_files = calloc(rfiles->count, sizeof(*m.runtime_files));
		if (!m.runtime_files) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < rfiles->count; i++) {
			const struct ynode *f = rfiles->items[i];
			if (yexpect(&c, f, YT_MAP, "a runtime_files entry"))
				goto out;
			ycheck_keys(&c, f, fkeys, "a runtime_files entry");
			const char *p = yget_str(&c, f, "path", 1, "runtime_files entry");
			const char *mode = yget_str(&c, f, "mode", 1, "runtime_files entry");
			const char *h = yget_str(&c, f, "sha256", 1, "runtime_files entry");
			if (!p || p[0] != '/' || !mode ||
			    veil_unhex(h, m.runtime_files[i].sha256, VEIL_SHA256_SIZE)) {
				yerr(&c, f, "malformed runtime_files entry");
				goto out;
			}
			if (!(m.runtime_files[i].path = strdup(p))) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			m.runtime_files[i].mode = (unsigned)strtoul(mode, NULL, 8);
			m.runtime_file_count++;
		}
	}
	const struct ynode *enc = yget_coll(&c, root, "encryption", YT_MAP, 0, "record");
	if (enc) {
		static const char *const ekeys[] = {"key_id", "files", NULL};
		ycheck_keys(&c, enc, ekeys, "record encryption");
		const char *kid = yget_str(&c, enc, "key_id", 1, "record encryption");
		size_t n = 0;
		char **ef = yget_strlist(&c, enc, "files", 1, &n, "record encryption");
		if (c.errors || !veil_code_key_id_valid(kid) || !n) {
			yerr(&c, enc, "malformed encryption block");
			goto out;
		}
		snprintf(m.code_key_id, sizeof(m.code_key_id), "%s", kid);
		if (!(m.encrypted = calloc(n, sizeof(*m.encrypted)))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (!(m.encrypted[i] = strdup(ef[i]))) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			m.encrypted_count++;
		}
	}
	char check[2 * VEIL_SHA256_SIZE + 1];
	if (veil_fileset_root(m.files, m.file_count, check) || strcmp(check, m.file_set_root)) {
		yerr(&c, root,
		     "file_set_root does not match the files listed; the record was "
		     "changed after 'veil apply'");
		goto out;
	}
	if (!m.name || !m.image || !m.command || !m.pwd) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	*out = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	veil_measurement_free(&m);
	return rc;
}

int veil_measurement_load(const char *path, struct veil_measurement *out, struct veil_diags *d)
{
	struct ydoc doc;
	int rc = ydoc_init(&doc, path);
	if (!rc)
		rc = ydoc_load(&doc, path, NULL, d);
	if (!rc)
		rc = veil_measurement_parse(&doc, out, d);
	ydoc_free(&doc);
	return rc;
}

int veil_measure_encrypt(struct veil_measurement *m, const struct veil_service_manifest *sm,
			 const char *manifest_dir, const char *key_id,
			 const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *dir,
			 struct veil_diags *d)
{
	const struct veil_build *b = &sm->build;
	size_t plen = strcmp(m->pwd, "/") ? strlen(m->pwd) : 0;
	unsigned char *used = calloc(b->encrypt_count + 1, 1);
	char **list = calloc(m->file_count + 1, sizeof(*list));
	size_t n = 0;
	uint64_t total = 0;
	int rc = used && list ? 0 : VEIL_ENOMEM;
	if (!veil_code_key_id_valid(key_id)) {
		veil_diag(d, "code key id '%s' is malformed", key_id);
		rc = VEIL_EINVAL;
	}
	for (size_t i = 0; !rc && i < m->file_count; i++) {
		struct veil_file_entry *f = &m->files[i];
		const char *rel = f->path + plen + 1;
		int hit = 0;
		for (size_t g = 0; g < b->encrypt_count; g++)
			if (!fnmatch(b->encrypt[g], rel, 0))
				hit = used[g] = 1;
		if (!hit)
			continue;
		char *src = veil_path_join(manifest_dir, rel);
		char *dst = veil_path_join(dir, f->path + 1);
		char *parent = dst ? veil_dirname(dst) : NULL;
		char *plain = NULL;
		uint8_t *ct = NULL, h[VEIL_SHA256_SIZE];
		size_t psize = 0, csize = 0;
		rc = src && dst && parent ? 0 : VEIL_ENOMEM;
		if (!rc)
			rc = veil_read_file(src, VEIL_CODE_MAX_SIZE, &plain, &psize, d);
		/* veil-run holds them in memory with the injection files: one
		 * budget of 64 MiB and 256 files for both */
		if (!rc && ((total += psize) > VEIL_CODE_MAX_SIZE ||
			    n + 1 + sm->inject_count > VEIL_CODE_MAX_FILES)) {
			veil_diag(
			    d,
			    "build: the encrypted files and injection files exceed %zu MiB or "
			    "%d files in total (veil-run keeps them in memory)",
			    VEIL_CODE_MAX_SIZE >> 20, VEIL_CODE_MAX_FILES);
			rc = VEIL_ELIMIT;
		}
		/* the file must be the one measured a moment ago */
		if (!rc &&
		    (veil_sha256(plain, psize, h) || CRYPTO_memcmp(h, f->sha256, sizeof(h)))) {
			veil_diag(
			    d, "copy: '%s' changed while it was measured; run 'veil apply' again",
			    src);
			rc = VEIL_EINVAL;
		}
		if (!rc && (rc = veil_code_encrypt(key, f->path, (const uint8_t *)plain, psize, &ct,
						   &csize)))
			veil_diag(d, "copy: cannot encrypt '%s'%s", src,
				  rc == VEIL_ELIMIT ? ": larger than 64 MiB" : "");
		if (plain) {
			OPENSSL_cleanse(plain, psize);
			free(plain);
		}
		if (!rc)
			rc = veil_mkdirs(parent, 0755, d);
		if (!rc)
			rc = veil_write_file(dst, ct, csize, 0644, d);
		if (!rc)
			rc = veil_sha256(ct, csize, f->sha256);
		if (!rc && !(list[n++] = strdup(f->path)))
			rc = VEIL_ENOMEM;
		free(ct);
		free(src);
		free(dst);
		free(parent);
	}
	for (size_t g = 0; !rc && g < b->encrypt_count; g++)
		if (!used[g]) {
			veil_diag_at(d, sm->file, b->encrypt_pos.line, b->encrypt_pos.col,
				     "build: encrypt '%s' matches none of the copy files",
				     b->encrypt[g]);
			rc = VEIL_EINVAL;
		}
	if (!rc)
		rc = veil_fileset_root(m->files, m->file_count, m->file_set_root);
	if (!rc && !(m->encrypted_dir = strdup(dir)))
		rc = VEIL_ENOMEM;
	if (!rc) {
		snprintf(m->code_key_id, sizeof(m->code_key_id), "%s", key_id);
		m->encrypted = list;
		m->encrypted_count = n;
		list = NULL;
	}
	for (size_t i = 0; list && i < n; i++)
		free(list[i]);
	free(list);
	free(used);
	return rc;
}
