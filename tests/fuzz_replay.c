/*
 * fuzz_replay.c -- runs a fuzz target over its seed corpus without
 * libFuzzer, so that `make check` (and its ASan build) exercises every
 * parser of outside bytes. The corpus is $top_srcdir/tests/corpus/NAME,
 * NAME given at build time as FUZZ_CORPUS; extra arguments are files.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!fp) {
		perror(path);
		return 1;
	}
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, fp) != (size_t)len) {
		fclose(fp);
		free(buf);
		return 1;
	}
	fclose(fp);
	/* An exact-size heap copy lets ASan catch reads past the end. */
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	char dir[4096], path[8192];
	struct dirent *de;
	int n = 0, failed = 0;
	DIR *d;

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			failed |= run_file(argv[i]);
		return failed;
	}
	snprintf(dir, sizeof(dir), "%s/tests/corpus/%s", top ? top : ".",
		 FUZZ_CORPUS);
	d = opendir(dir);
	if (!d) {
		perror(dir);
		return 1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		failed |= run_file(path);
		n++;
	}
	closedir(d);
	printf("%s: %d corpus inputs replayed\n", FUZZ_CORPUS, n);
	return failed || n == 0;
}
