#include <stdbool.h>
#include <string.h>

#include "escape.h"

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0 if there is none. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Walks s, writing each valid character through put_char (c its first byte,
 * n its length) and each other byte through put_bad. */
static void walk(FILE *out, const char *s, void (*put_char)(FILE *, const char *, size_t),
		 void (*put_bad)(FILE *, unsigned char))
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n && !(n == 1 && (*p < 0x20 || *p == 0x7f))) {
			put_char(out, (const char *)p, n);
			p += n;
		} else {
			put_bad(out, *p++);
		}
	}
}

static void raw(FILE *out, const char *c, size_t n)
{
	fwrite(c, 1, n, out);
}

static void hex_byte(FILE *out, unsigned char b)
{
	fprintf(out, "\\x%02x", b);
}

void put_text(FILE *out, const char *s)
{
	walk(out, s, raw, hex_byte);
}

static void json_char(FILE *out, const char *c, size_t n)
{
	if (*c == '"' || *c == '\\')
		fputc('\\', out);
	fwrite(c, 1, n, out);
}

static void json_bad(FILE *out, unsigned char b)
{
	if (b < 0x20 || b == 0x7f)
		fprintf(out, "\\u%04x", b);
	else
		fputs("\\ufffd", out);
}

void put_json(FILE *out, const char *s)
{
	fputc('"', out);
	walk(out, s, json_char, json_bad);
	fputc('"', out);
}

static void csv_char(FILE *out, const char *c, size_t n)
{
	if (*c == '"')
		fputc('"', out);
	fwrite(c, 1, n, out);
}

void put_csv(FILE *out, const char *s)
{
	bool quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote)
		fputc('"', out);
	walk(out, s, csv_char, hex_byte);
	if (quote)
		fputc('"', out);
}

static void xml_char(FILE *out, const char *c, size_t n)
{
	switch (*c) {
	case '&':
		fputs("&amp;", out);
		return;
	case '<':
		fputs("&lt;", out);
		return;
	case '>':
		fputs("&gt;", out);
		return;
	case '\'':
		fputs("&apos;", out);
		return;
	case '"':
		fputs("&quot;", out);
		return;
	}
	fwrite(c, 1, n, out);
}

static void xml_bad(FILE *out, unsigned char b)
{
	(void)b;
	fputs("\xef\xbf\xbd", out);
}

void put_xml(FILE *out, const char *s)
{
	walk(out, s, xml_char, xml_bad);
}
