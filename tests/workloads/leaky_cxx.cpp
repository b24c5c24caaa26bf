// C++ leaks through new, new[] and a template method, among freed churn of
// every form of new and delete. Leaks (function: blocks x bytes):
//   leak_new 3 x 48, leak_new_array 2 x 100, Pool<double>::grow 4 x 64.
#include <cstddef>
#include <new>
#include <vector>

struct Widget {
	long a[6];
};

struct alignas(64) Aligned {
	char c[128];
};

template <typename T> struct Pool {
	T *grow()
	{
		return new T[8];
	}
};

static void *volatile sink[16];

void leak_new()
{
	for (int i = 0; i < 3; i++)
		sink[i] = new Widget();
}

void leak_new_array()
{
	for (int i = 0; i < 2; i++)
		sink[i] = new int[25];
}

void leak_template()
{
	Pool<double> pool;

	for (int i = 0; i < 4; i++)
		sink[i] = pool.grow();
}

static void churn()
{
	for (int i = 0; i < 5000; i++) {
		delete new Widget();
		delete[] new char[1 + i % 300];
		delete new Aligned();
		delete[] new Aligned[2];
		delete new (std::nothrow) Widget();
		std::vector<int> v(i % 50 + 1);
		v.push_back(i);
	}
}

int main()
{
	churn();
	leak_new();
	leak_new_array();
	leak_template();
	return 0;
}
