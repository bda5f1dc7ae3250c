/* lasc SOCKET REPORT_DATA_HEX CONFIG_ID: asks veil-las for evidence, as
 * veil-run does (src/las/main.c: REPORT, then the answer to its challenge
 * from this same process), and prints veil-las's last answer: the evidence,
 * or its ERROR line. Exits 0 only with evidence. The e2e scripts build it
 * static (build_lasc in lib.sh): veil-las vouches for no dynamically linked
 * caller, and the policies of those tests name this program's hash. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[600], buf[65536], nonce[64];
	if (argc != 4) {
		fputs("usage: lasc SOCKET REPORT_DATA_HEX CONFIG_ID\n", stderr);
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int len = snprintf(req, sizeof(req), "REPORT %s %s\n", argv[2], argv[3]);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, (size_t)len) != len)
		return perror(argv[1]), 1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1), got = 0;
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	if (sscanf(buf, "CHALLENGE %32s", nonce) == 1) {
		len = snprintf(req, sizeof(req), "RESPONSE %s\n", nonce);
		if (write(fd, req, (size_t)len) != len)
			return 1;
		while ((n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
			got += n;
		buf[got] = '\0';
	}
	fputs(buf, stdout);
	return strncmp(buf, "{", 1) != 0;
}
