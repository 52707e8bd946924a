-- name: bookmarks_of_handle
-- type: bookmarks
-- params: $1 handle text
-- index: bookmarks_pkey (handle)
-- sample: SELECT handle FROM bookmarks GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- The board entries a handle saved.
SELECT handle, entry_id
FROM bookmarks
WHERE handle = $1
ORDER BY entry_id
