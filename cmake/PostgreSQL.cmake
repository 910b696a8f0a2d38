# Locates the PostgreSQL server development files through pg_config, the way
# PGXS does, so the extension builds against exactly the server it loads into.
find_program(PG_CONFIG pg_config
  HINTS /usr/lib/postgresql/15/bin
  REQUIRED)

function(pgd_pg_config out flag)
  execute_process(COMMAND ${PG_CONFIG} ${flag}
    OUTPUT_VARIABLE value OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

pgd_pg_config(PG_INCLUDEDIR_SERVER --includedir-server)
pgd_pg_config(PG_PKGLIBDIR --pkglibdir)
pgd_pg_config(PG_SHAREDIR --sharedir)
pgd_pg_config(PG_BINDIR --bindir)
pgd_pg_config(PG_VERSION_STRING --version)
string(REGEX MATCH "[0-9]+" PG_MAJOR "${PG_VERSION_STRING}")
# pg_regress ships in the PGXS tree, not in bindir.
get_filename_component(PG_PGXS_DIR "${PG_PKGLIBDIR}/pgxs" ABSOLUTE)
find_program(PG_REGRESS pg_regress HINTS ${PG_PGXS_DIR}/src/test/regress NO_DEFAULT_PATH)
message(STATUS "PostgreSQL ${PG_MAJOR}: server headers ${PG_INCLUDEDIR_SERVER}, pkglibdir ${PG_PKGLIBDIR}")
