// A leak through new in a template method, called from a function that keeps
// no frame pointer (built -O2 -fomit-frame-pointer): 5 x 48 B in
// Pool<Item>::grow(int), called from fill(int), called from main.
#include <cstdio>

struct Item {
	char data[48];
};

template <typename T> struct Pool {
	T *held[16];
	int n = 0;

	__attribute__((noinline)) void grow(int k)
	{
		for (int i = 0; i < k; i++)
			held[n++] = new T();
		asm volatile("" ::: "memory");
	}
};

static Pool<Item> pool;
volatile int sink;

__attribute__((noinline)) void fill(int k)
{
	pool.grow(k);
	sink++;
}

int main()
{
	fill(5);
	std::printf("%d items\n", pool.n);
	return 0;
}
