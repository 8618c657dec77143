-- The request id of the webhook that brought each conversion, so a log
-- search follows it from the webhook to the worker step that booked it.
alter table conversions add column request_id text;
