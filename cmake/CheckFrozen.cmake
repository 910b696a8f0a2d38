# cmake -DFILE=<file> -DSHA256=<expected> -P CheckFrozen.cmake
#
# A released extension script is frozen: databases created from it are
# upgraded by later scripts that assume exactly its content. Fails when the
# file no longer has the checksum recorded at its release.
file(SHA256 ${FILE} actual)
if(NOT actual STREQUAL SHA256)
  message(FATAL_ERROR "${FILE} was edited after its release (sha256 ${actual}, recorded ${SHA256}). "
                      "A released script never changes: put schema changes in sql/parts/ and in the next "
                      "upgrade script (sql/upgrade/<from>--<to>/), see docs/OPERATIONS.md \"Upgrading\".")
endif()
message(STATUS "${FILE}: sha256 ${actual} as released")
