/*
 * listener.h - the broker's listening socket.
 */
#ifndef PGL_LISTENER_H
#define PGL_LISTENER_H

struct broker;

/*
 * Binds and listens on the configured socket with its mode and group,
 * replacing a stale socket file but never a live broker's.  Returns 0, or
 * -1 after logging why.
 */
int listener_start(struct broker *b) __attribute__((warn_unused_result));

/* Stops accepting, closes the socket and removes its file (idempotent). */
void listener_stop(struct broker *b);

#endif
