# frozen_string_literal: true

# What an rb> task's code sees of its task: OffloadEnv.params, OffloadEnv.store(...),
# OffloadEnv.export(...); and Digdag.env with the same methods, so Digdag scripts run unchanged.
#
#   class MyWorkflow
#     def step1
#       Digdag.env.store(my_value: 1)            # visible to the following tasks
#       OffloadEnv.export('table' => 'events')   # visible to this task's children
#     end
#   end
#
# rb_runner.rb fills the params before it calls the task and writes what was stored or exported to
# output.json afterwards. Standard library only (Ruby 2.7+): this runs in the task's image.
require 'json'

module OffloadEnv
  @params = {}
  @task_name = nil
  @store_params = {}
  @export_params = {}
  @state_params = {}
  @subtask_config = {}

  class << self
    attr_reader :params, :task_name, :store_params, :export_params, :state_params, :subtask_config

    # Set the task's params and forget any earlier output (the runner calls this).
    def start(params, task_name = nil)
      @params.replace(params)
      @task_name = task_name
      [@store_params, @export_params, @state_params, @subtask_config].each(&:clear)
      self
    end

    # Store params for the tasks that run after this one (Digdag's store).
    def store(params = {}, **kw)
      merge(@store_params, params, kw)
    end

    # Export params to this task's subtasks (Digdag's export).
    def export(params = {}, **kw)
      merge(@export_params, params, kw)
    end

    # Digdag's state for retries; kept for compatibility, not written to output.json.
    def set_state(params = {}, **kw)
      merge(@state_params, params, kw)
    end

    # Record a subtask as Digdag does: add_subtask(config_hash) or add_subtask(Klass, :method, params).
    def add_subtask(*args, **kw)
      config =
        case args.length
        when 0 then {}
        when 1 then args[0].to_h
        when 2, 3
          klass, method_name, extra = args
          (extra || {}).to_h.merge('rb>' => "#{klass.is_a?(Module) ? klass.name : klass}.#{method_name}")
        else raise ArgumentError, "add_subtask takes a config Hash or (Class, method, params), got #{args.length} arguments"
        end
      config = stringify(config).merge(stringify(kw))
      @subtask_config["+subtask#{@subtask_config.size}"] = config
      nil
    end

    # The content of output.json; a failed task's params are dropped, as Digdag does.
    def output(error = nil)
      if error
        { 'store_params' => {}, 'export_params' => {}, 'subtask_config' => {}, 'error' => error }
      else
        { 'store_params' => @store_params, 'export_params' => @export_params, 'subtask_config' => @subtask_config }
      end
    end

    private

    def merge(target, params, kw)
      raise TypeError, "expected a Hash of params, got #{params.class}" unless params.respond_to?(:to_h)

      target.merge!(stringify(params.to_h)).merge!(stringify(kw))
      nil
    end

    def stringify(hash)
      hash.each_with_object({}) { |(k, v), out| out[k.to_s] = v }
    end
  end
end

# Digdag.env, for Digdag's Ruby scripts (the digdag gem's API).
module Digdag
  def self.env
    OffloadEnv
  end
end
