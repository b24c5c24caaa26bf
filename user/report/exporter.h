/* The --listen exporter: Prometheus metrics over HTTP, from a thread of its own. */
#ifndef EXPORTER_H
#define EXPORTER_H

#include <stddef.h>
#include <sys/socket.h>

struct exporter;

/* Listening on addr, serving an empty page until the first publish; NULL
 * with the reason in err if it cannot listen there. */
struct exporter *exporter_start(const struct sockaddr_storage *addr, char *err, size_t errlen);
/* Serve these pages from now on (the text format, OpenMetrics): taken, to free. */
void exporter_publish(struct exporter *e, char *page[2], const size_t len[2]);
void exporter_stop(struct exporter *e);
/* addr as ADDR:PORT, in a static buffer. */
const char *exporter_address(const struct sockaddr_storage *addr);

#endif
