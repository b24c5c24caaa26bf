/* Writing strings we do not control (process names, symbols, file names) into
 * each output format, valid whatever bytes they hold. */
#ifndef ESCAPE_H
#define ESCAPE_H

#include <stdio.h>

/* Text: control bytes and bytes that are not UTF-8 as \xNN. */
void put_text(FILE *out, const char *s);
/* A JSON string, quoted: invalid UTF-8 becomes U+FFFD. */
void put_json(FILE *out, const char *s);
/* A CSV field, quoted when it must be (RFC 4180); bytes as for text. */
void put_csv(FILE *out, const char *s);
/* XML character data or attribute: markup escaped; control bytes and invalid
 * UTF-8 become U+FFFD. */
void put_xml(FILE *out, const char *s);

#endif
