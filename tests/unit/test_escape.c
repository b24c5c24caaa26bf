/* Strings we do not control, in each output format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "unit.h"

static char *render(void (*put)(FILE *, const char *), const char *s)
{
	static char buf[256];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	put(f, s);
	fclose(f);
	return buf;
}

void test_escape_each_format(void)
{
	const char *bad = "a\xff\xfe\"<&,\n\x01z";

	CHECK(strcmp(render(put_json, bad), "\"a\\ufffd\\ufffd\\\"<&,\\u000a\\u0001z\"") == 0);
	CHECK(strcmp(render(put_text, bad), "a\\xff\\xfe\"<&,\\x0a\\x01z") == 0);
	CHECK(strcmp(render(put_csv, bad), "\"a\\xff\\xfe\"\"<&,\\x0a\\x01z\"") == 0);
	CHECK(strcmp(render(put_xml, bad),
		     "a\xef\xbf\xbd\xef\xbf\xbd&quot;&lt;&amp;,\xef\xbf\xbd\xef\xbf\xbdz") == 0);
	/* Well-formed UTF-8 passes as it is; overlong forms and surrogates do not. */
	CHECK(strcmp(render(put_json, "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		     "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"") == 0);
	CHECK(strcmp(render(put_json, "\xc0\xaf\xed\xa0\x80"),
		     "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"") == 0);
	CHECK(strcmp(render(put_csv, "plain"), "plain") == 0);
}
