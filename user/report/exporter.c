/*
 * --listen: /metrics over HTTP, served by libmicrohttpd from its own thread.
 * The tracer publishes a page after each report; a scrape only copies the
 * last one, so a slow or stuck client never holds up sampling.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exporter.h"
#include "util.h"

#define TEXT_TYPE	 "text/plain; version=0.0.4; charset=utf-8"
#define OPENMETRICS_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

struct exporter {
	struct MHD_Daemon *daemon;
	int fd;
	pthread_mutex_t lock;
	char *page[2]; /* the text format, OpenMetrics */
	size_t len[2];
	unsigned long long scrapes;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* OpenMetrics when the client lists it among what it accepts. */
static bool wants_openmetrics(struct MHD_Connection *c)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");

	return accept && strstr(accept, "application/openmetrics-text");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **req)
{
	static const char index[] = "memleak-bpf: metrics at /metrics\n";
	struct exporter *e = cls;
	enum MHD_Result ret;
	int k;

	(void)version, (void)upload, (void)upload_len, (void)req;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
	if (!strcmp(url, "/"))
		return reply(c, MHD_HTTP_OK, "text/plain", index, sizeof(index) - 1);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10);
	k = wants_openmetrics(c);
	pthread_mutex_lock(&e->lock);
	e->scrapes++;
	ret = reply(c, MHD_HTTP_OK, k ? OPENMETRICS_TYPE : TEXT_TYPE, e->page[k], e->len[k]);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static int listen_on(const struct sockaddr_storage *addr, char *err, size_t errlen)
{
	socklen_t len =
	    addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int one = 1, fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && !setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
	    !bind(fd, (const struct sockaddr *)addr, len) && !listen(fd, 64))
		return fd;
	snprintf(err, errlen, "cannot listen on %s: %s", exporter_address(addr), strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

const char *exporter_address(const struct sockaddr_storage *addr)
{
	static char text[INET6_ADDRSTRLEN + 16];
	char host[INET6_ADDRSTRLEN] = "?";

	if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(text, sizeof(text), "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(text, sizeof(text), "%s:%u", host, ntohs(in->sin_port));
	}
	return text;
}

struct exporter *exporter_start(const struct sockaddr_storage *addr, char *err, size_t errlen)
{
	struct exporter *e;
	int fd = listen_on(addr, err, errlen);

	if (fd < 0)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->fd = fd;
	pthread_mutex_init(&e->lock, NULL);
	for (int k = 0; k < 2; k++)
		e->page[k] = xstrdup(k ? "# EOF\n" : ""), e->len[k] = strlen(e->page[k]);
	e->daemon =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, handle,
			     e, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, 16u,
			     MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!e->daemon) {
		snprintf(err, errlen, "cannot serve on %s: libmicrohttpd did not start",
			 exporter_address(addr));
		exporter_stop(e);
		return NULL;
	}
	return e;
}

void exporter_publish(struct exporter *e, char *page[2], const size_t len[2])
{
	pthread_mutex_lock(&e->lock);
	for (int k = 0; k < 2; k++) {
		free(e->page[k]);
		e->page[k] = page[k];
		e->len[k] = len[k];
	}
	pthread_mutex_unlock(&e->lock);
}

void exporter_stop(struct exporter *e)
{
	if (!e)
		return;
	if (e->daemon)
		MHD_stop_daemon(e->daemon);
	close(e->fd);
	free(e->page[0]);
	free(e->page[1]);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
