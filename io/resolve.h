/*
 * resolve.h — internals of resolve.c (gh_getaddrinfo's helper threads).
 */
#ifndef GH_IO_RESOLVE_H
#define GH_IO_RESOLVE_H

struct addrinfo;

typedef int (*gh__getaddrinfo_fn)(const char *host, const char *service,
                                  const struct addrinfo *hints, struct addrinfo **res);

/*
 * The function the helper threads call: getaddrinfo, unless a test put a
 * slow or failing one here (set it before the lookups that should use it).
 */
extern gh__getaddrinfo_fn gh__resolve_getaddrinfo;

#endif /* GH_IO_RESOLVE_H */
