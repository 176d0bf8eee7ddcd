/* The floor of an exec'd CNI plugin: a compiled program that does what `nuage-cni VERSION` does
 * (read the configuration on stdin, print the supported versions) -- no interpreter start.
 * bench/plugin_start.py compiles it (when a C compiler is there) and runs it beside the
 * Python entry points, to show how much of a call is the interpreter itself. Not installed. */
#include <unistd.h>

int main(void) {
    static const char out[] = "{\"cniVersion\": \"1.0.0\", \"supportedVersions\": "
                              "[\"0.3.0\", \"0.3.1\", \"0.4.0\", \"1.0.0\", \"1.1.0\"]}\n";
    char buf[65536];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return write(1, out, sizeof out - 1) == (ssize_t)(sizeof out - 1) ? 0 : 1;
}
