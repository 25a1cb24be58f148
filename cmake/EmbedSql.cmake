# Compiles the numbered migration files into the binary: jobd_embed_migrations()
# generates a .cpp that defines jobd::store::embeddedMigrations().
function(jobd_embed_migrations out_var dir)
  file(GLOB sql_files CONFIGURE_DEPENDS "${dir}/*.sql")
  list(SORT sql_files)
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
