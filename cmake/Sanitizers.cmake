# JOBD_SANITIZE=address: AddressSanitizer + UndefinedBehaviorSanitizer (the test build).
# JOBD_SANITIZE=thread: ThreadSanitizer (the concurrency tests).
if(JOBD_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(JOBD_SANITIZE STREQUAL "thread")
  # -Wno-tsan: Boost.Asio's fenced blocks use std::atomic_thread_fence, which
  # GCC 12 warns TSan does not model; Asio's own synchronisation is mutexes.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
elseif(NOT JOBD_SANITIZE STREQUAL "")
  message(FATAL_ERROR "JOBD_SANITIZE must be empty, 'address' or 'thread', not '${JOBD_SANITIZE}'")
endif()
