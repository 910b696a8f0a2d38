# pgd_install_atomically(<target> <destination dir>)
#
# Installs a target's file by copying it beside the destination and renaming
# it into place. A plain install overwrites the file in place, and a running
# PostgreSQL (which has pg_durable.so mapped) or daemon would then execute
# the new bytes through the old mapping and crash. rename() gives the new
# file a new inode; running processes keep the old one until they restart.
function(pgd_install_atomically target destination)
  install(CODE "
    set(src \"$<TARGET_FILE:${target}>\")
    set(dir \"\$ENV{DESTDIR}${destination}\")
    get_filename_component(name \"\${src}\" NAME)
    file(MAKE_DIRECTORY \"\${dir}\")
    message(STATUS \"Installing (atomic rename): \${dir}/\${name}\")
    file(COPY_FILE \"\${src}\" \"\${dir}/.\${name}.tmp\")
    file(RENAME \"\${dir}/.\${name}.tmp\" \"\${dir}/\${name}\")
  ")
endfunction()
