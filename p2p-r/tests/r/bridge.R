## The R side of the bridge round trip test. Usage:
##   Rscript bridge.R requests <dir>   writes <dir>/requests.bin (and <dir>/payload.bin,
##                                     the payload submitted as future 1)
##   Rscript bridge.R replies <dir>    decodes <dir>/replies.bin, fed 5 bytes at a time,
##                                     and prints one line per reply
args <- commandArgs(trailingOnly = TRUE)
dir <- args[2]
ns <- asNamespace("future.p2p")
if (args[1] == "requests") {
  payload <- serialize(list(answer = 42L), NULL)
  writeBin(payload, file.path(dir, "payload.bin"))
  frames <- c(
    ns$bridge_hello(),
    ns$bridge_submit(1L, payload, label = "fit \u00e9t\u00e9 model"),
    ns$bridge_submit(2L, raw(0L)),
    ns$bridge_cancel(1L),
    ns$bridge_poll(2L),
    ns$bridge_poll()
  )
  writeBin(frames, file.path(dir, "requests.bin"))
} else if (args[1] == "replies") {
  path <- file.path(dir, "replies.bin")
  bytes <- readBin(path, "raw", file.size(path))
  buffer <- raw(0L)
  for (start in seq(1L, length(bytes), by = 5L)) {
    buffer <- c(buffer, bytes[start:min(start + 4L, length(bytes))])
    decoded <- ns$decode_frames(buffer)
    buffer <- decoded$rest
    for (frame in decoded$frames) {
      reply <- ns$bridge_reply(frame)
      fields <- reply[setdiff(names(reply), c("type", "id"))]
      shown <- vapply(names(fields), function(name) {
        value <- fields[[name]]
        if (is.raw(value)) value <- sprintf("<%d bytes:%s>", length(value), paste(as.integer(value), collapse = ","))
        sprintf("%s=%s", name, value)
      }, "")
      cat(sprintf("%s %d %s\n", reply$type, reply$id, paste(shown, collapse = " ")))
    }
  }
  cat(sprintf("left=%d\n", length(buffer)))
}
