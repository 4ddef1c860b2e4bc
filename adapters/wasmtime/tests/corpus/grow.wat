;; encode grows memory 1 MiB at a time until refused, then traps: the memory cap must end it.
;; Generated once from a template (see docs/plugins.md, "Hostile plugins"); edit freely.
(module
  (memory (export "memory") 2)
  (data (i32.const 16) "\00{\"name\":\"wat.grow\"}")
  (func (export "statemesh_abi_version") (result i32) (i32.const 1))
  ;; One buffer at a time: a status byte at 1024, data from 1025.
  (func (export "statemesh_alloc") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 100000)) (then (return (i32.const 0))))
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.const 1025))
  (func (export "statemesh_dealloc") (param i32 i32))
  (func (export "statemesh_describe") (result i64) (i64.const 68719476756))
  (func (export "statemesh_validate") (param i32 i32) (result i64) (i64.const 0))
  ;; [status][input]: the buffer alloc handed out, one byte earlier.
  (func $echo (param $p i32) (param $l i32) (result i64)
    (if (result i64) (i32.eqz (local.get $l))
      (then (i64.const 4398046511105))
      (else
        (i64.or
          (i64.shl (i64.extend_i32_u (i32.sub (local.get $p) (i32.const 1))) (i64.const 32))
          (i64.extend_i32_u (i32.add (local.get $l) (i32.const 1)))))))
  (func (export "statemesh_encode") (param $p i32) (param $l i32) (result i64)
    (block $done (loop $more (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $more))) (unreachable))
  (func (export "statemesh_decode") (param $p i32) (param $l i32) (result i64)
    (call $echo (local.get $p) (local.get $l)))
)
