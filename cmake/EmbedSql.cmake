# Compiles the numbered migration files into the binary: jobd_embed_migrations()
# generates a .cpp that defines jobd::store::embeddedMigrations(). The files
# are lib/store/migrations/NNNN_*.sql and each handler's
# jobtypes/<handler>/migrations/NNNN_*.sql: one sequence of versions,
# ordered by file name.
function(jobd_embed_migrations out_var dir)
  file(GLOB found CONFIGURE_DEPENDS "${dir}/*.sql"
       "${PROJECT_SOURCE_DIR}/jobtypes/*/migrations/*.sql")
  set(keyed "")
  foreach(f IN LISTS found)
    get_filename_component(name "${f}" NAME)
    list(APPEND keyed "${name}|${f}")
  endforeach()
  list(SORT keyed)
  set(sql_files "")
  foreach(entry IN LISTS keyed)
    string(REGEX REPLACE "^[^|]*\\|" "" f "${entry}")
    list(APPEND sql_files "${f}")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/migrations_generated.cpp")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} "-DOUT=${out}" "-DFILES=${sql_files}"
            -P "${PROJECT_SOURCE_DIR}/cmake/GenerateMigrations.cmake"
    DEPENDS ${sql_files} "${PROJECT_SOURCE_DIR}/cmake/GenerateMigrations.cmake"
    COMMENT "Embedding SQL migrations"
    VERBATIM)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
