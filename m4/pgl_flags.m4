# pgl_flags.m4 - probe compiler and linker flags one at a time.
#
# PGL_CHECK_CFLAG(FLAG, VARIABLE)
#   Append FLAG to VARIABLE when the C compiler accepts it with -Werror, so an
#   unknown warning option is dropped rather than breaking the build.
AC_DEFUN([PGL_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([pgl_cv], [pgl_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [pgl_cv], [
    pgl_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
                      [AS_VAR_SET([pgl_cv], [yes])], [AS_VAR_SET([pgl_cv], [no])])
    CFLAGS=$pgl_save_CFLAGS])
  AS_VAR_IF([pgl_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([pgl_cv])
])

# PGL_CHECK_LDFLAG(FLAG, VARIABLE)
#   Append FLAG to VARIABLE when a program links with it.
AC_DEFUN([PGL_CHECK_LDFLAG], [
  AS_VAR_PUSHDEF([pgl_cv], [pgl_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [pgl_cv], [
    pgl_save_LDFLAGS=$LDFLAGS
    LDFLAGS="$LDFLAGS -Werror $1"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
                   [AS_VAR_SET([pgl_cv], [yes])], [AS_VAR_SET([pgl_cv], [no])])
    LDFLAGS=$pgl_save_LDFLAGS])
  AS_VAR_IF([pgl_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([pgl_cv])
])
