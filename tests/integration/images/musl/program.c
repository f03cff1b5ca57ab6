/* A musl program that says it ran and what LD_PRELOAD it was given. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *preload = getenv("LD_PRELOAD");
    printf("program started with LD_PRELOAD=%s\n", preload ? preload : "(unset)");
    return 0;
}
