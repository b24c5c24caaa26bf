// operator new failing, thrown and nothrow, among a known leak: traced, the
// program must print and return what it does untraced. Leaks 5 x 40 bytes
// through new in leak_some().
#include <cstdio>
#include <new>

static void *volatile sink[5];

void leak_some()
{
	for (int i = 0; i < 5; i++)
		sink[i] = new char[40];
}

int main()
{
	int thrown = 0, null = 0;

	for (int i = 0; i < 200; i++) {
		try {
			sink[0] = new char[1ULL << 62];
		} catch (const std::bad_alloc &) {
			thrown++;
		}
		if (!new (std::nothrow) char[1ULL << 62])
			null++;
		delete[] new char[16];
	}
	leak_some();
	std::printf("bad_alloc caught %d, nothrow null %d\n", thrown, null);
	return thrown == 200 && null == 200 ? 7 : 1;
}
