// Runs argv[1] seconds of allocation in four threads (malloc, realloc,
// new[], failing new caught), then prints what it did, which is the same
// traced or not, killed tracer or not: "ok <rounds> <caught>".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

static char *volatile sink; // keeps each new from being elided

static void work(double seconds, long *rounds, long *caught)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);

	while (std::chrono::steady_clock::now() < end) {
		char *p = static_cast<char *>(std::malloc(64));
		p = static_cast<char *>(std::realloc(p, 4096));
		delete[](sink = new char[100]);
		try {
			sink = new char[1ULL << 62];
			delete[] sink;
		} catch (const std::bad_alloc &) {
			++*caught;
		}
		std::free(p);
		++*rounds;
	}
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? std::atof(argv[1]) : 3;
	std::vector<std::thread> threads;
	long rounds[4] = {}, caught[4] = {};

	for (int i = 0; i < 4; i++)
		threads.emplace_back(work, seconds, &rounds[i], &caught[i]);
	for (auto &t : threads)
		t.join();
	bool ok = true;
	for (int i = 0; i < 4; i++)
		ok = ok && rounds[i] > 0 && rounds[i] == caught[i];
	std::printf("%s\n", ok ? "ok: every failing new caught" : "WRONG");
	return ok ? 0 : 1;
}
