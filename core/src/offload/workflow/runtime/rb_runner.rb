# frozen_string_literal: true

# Runs an rb> task: ruby IO/rb_runner.rb IO CALLABLE REQUIRE, with the task's working directory as cwd.
#
# Reads IO/input.json ({"params": {...}, "task_name": "+flow+task"}), requires REQUIRE (a file
# relative to cwd, with or without .rb, or a library on the load path; "" for none), then calls
# Class.method (Module::Class.method too) as Digdag does: on Class.new when the class has a public
# instance method of that name, else the class-level method. Arguments come from the params of
# their name (positional, keyword, **rest gets all params). Writes IO/output.json (store_params,
# export_params, subtask_config, and error when the task failed, then exit status 1). The return
# value is ignored, as in Digdag.
#
# Standard library only (Ruby 2.7+): this runs in the task's image, where offload is not installed.
require 'json'
require_relative 'offload_env'

module OffloadRunner
  INPUT_FILE = 'input.json'
  OUTPUT_FILE = 'output.json'
  EXIT_FAILED = 1
  EXIT_USAGE = 2

  # The task can not be called (bad name, missing file, class, method or argument): no task backtrace.
  # kind is the Ruby exception class that describes it best, reported as the error class.
  class SetupError < StandardError
    attr_reader :kind

    def initialize(kind, message)
      super(message)
      @kind = kind
    end
  end

  module_function

  def main(argv)
    unless [2, 3].include?(argv.length)
      warn 'usage: ruby IO/rb_runner.rb IO_DIR CLASS.METHOD [REQUIRE]'
      return EXIT_USAGE
    end
    io_dir, name, req = argv
    label = "rb> #{name}"
    prepare_process(io_dir)
    File.delete(File.join(io_dir, OUTPUT_FILE)) if File.exist?(File.join(io_dir, OUTPUT_FILE)) # not the previous run's
    begin
      data = JSON.parse(File.read(File.join(io_dir, INPUT_FILE), encoding: 'UTF-8'))
      params = data['params'] || {}
      raise TypeError, 'params must be an object' unless params.is_a?(Hash)
    rescue StandardError => e
      return fail_with(io_dir, { 'class' => 'InputError', 'message' => "#{label}: can not read #{INPUT_FILE}: #{e.message}", 'backtrace' => [] })
    end
    OffloadEnv.start(params, data['task_name'])

    begin
      call(name, req.to_s, params, label)
    rescue SetupError => e
      warn e.message
      return fail_with(io_dir, { 'class' => e.kind, 'message' => e.message, 'backtrace' => [] })
    rescue SystemExit => e
      return succeed(io_dir, label) if e.success?

      message = "#{label}: exited with status #{e.status}"
      warn message
      return fail_with(io_dir, describe(e, message), e.status)
    rescue Exception => e # any failure of the task's code (Interrupt too) is the task's result
      e.set_backtrace(task_backtrace(e))
      warn e.full_message(highlight: false)
      return fail_with(io_dir, describe(e, e.message))
    end
    succeed(io_dir, label)
  end

  # cwd first on the load path (the task's files), then IO (offload_env); line-buffered output so the
  # task's log reaches the driver while it runs.
  def prepare_process(io_dir)
    $LOAD_PATH.unshift(File.expand_path(io_dir))
    $LOAD_PATH.unshift(Dir.pwd)
    $stdout.sync = true
    $stderr.sync = true
  end

  def call(name, req, params, label)
    require_task_file(req, label) unless req.empty?
    receiver, method_name = resolve(name, params, label)
    method = receiver.method(method_name)
    args, kwargs = arguments(method, params, label)
    kwargs.empty? ? method.call(*args) : method.call(*args, **kwargs)
  end

  # Digdag's require: 'tasks/my_workflow' is a file of the project (with or without .rb); anything
  # else is left to Ruby's load path (a gem, the standard library).
  def require_task_file(req, label)
    path = File.expand_path(req, Dir.pwd)
    file = [path, "#{path}.rb"].find { |candidate| File.file?(candidate) }
    return require(file) if file

    begin
      require req
    rescue LoadError => e
      raise unless e.path == req

      raise SetupError.new('LoadError', "#{label}: can not load #{req.inspect}: no file #{req} or #{req}.rb in #{Dir.pwd}, nor a library of that name")
    end
  end

  # [receiver, method name]: an instance of the class when it has a public instance method of that
  # name (Digdag's order), else the class or module itself.
  def resolve(name, params, label)
    class_name, _, method_name = name.rpartition('.')
    if class_name.empty? || method_name.empty?
      raise SetupError.new('ArgumentError', "#{label}: expected CLASS.METHOD (Module::Class.method works too)")
    end

    begin
      owner = Object.const_get(class_name)
    rescue NameError => e
      raise unless e.name && class_name.split('::').include?(e.name.to_s)

      raise SetupError.new('NameError', "#{label}: uninitialized constant #{class_name} (is it defined by the file named in require:?)")
    end
    raise SetupError.new('TypeError', "#{label}: #{class_name} is not a class or module") unless owner.is_a?(Module)

    method_sym = method_name.to_sym
    if owner.is_a?(Class) && owner.public_method_defined?(method_sym)
      init = owner.instance_method(:initialize)
      args, kwargs = arguments(init, params, label, "#{owner}#initialize")
      instance = kwargs.empty? ? owner.new(*args) : owner.new(*args, **kwargs)
      return [instance, method_sym]
    end
    return [owner, method_sym] if owner.respond_to?(method_sym)

    raise SetupError.new('NoMethodError', "#{label}: #{class_name} has neither a public instance method nor a class method named #{method_name}")
  end

  # Digdag's binding: each parameter from the param of its name; defaults kept; **rest gets all params
  # (keys symbolized, nested hashes too, as Digdag does).
  def arguments(method, params, label, of = nil)
    args = []
    kwargs = {}
    gap = nil
    method.parameters.each do |kind, sym|
      key = sym.to_s
      case kind
      when :req
        missing!(label, key, of) unless params.key?(key)
        args << params[key]
      when :opt
        if !params.key?(key)
          gap ||= key
        elsif gap
          raise SetupError.new('ArgumentError', "#{label}: optional argument '#{key}' is set but '#{gap}' before it is not; positional arguments can not skip one")
        else
          args << params[key]
        end
      when :keyreq
        missing!(label, key, of) unless params.key?(key)
        kwargs[sym] = params[key]
      when :key
        kwargs[sym] = params[key] if params.key?(key)
      when :keyrest
        kwargs = symbolize_keys(params).merge(kwargs)
      end
    end
    [args, kwargs]
  end

  def missing!(label, key, of)
    where = of ? " of #{of}" : ''
    raise SetupError.new('ArgumentError', "#{label}: required argument '#{key}'#{where} is not set in the task's params")
  end

  def symbolize_keys(hash)
    hash.each_with_object({}) do |(k, v), out|
      out[k.to_s.to_sym] = v.is_a?(Hash) ? symbolize_keys(v) : v
    end
  end

  # The backtrace of the task's code: the runner's lines and Ruby's require machinery dropped.
  def task_backtrace(error)
    (error.backtrace || []).reject do |line|
      line.start_with?("#{__FILE__}:", '<internal:') || line.include?('/rubygems/core_ext/kernel_require.rb:')
    end
  end

  def describe(error, message)
    { 'class' => error.class.name, 'message' => message, 'backtrace' => task_backtrace(error) }
  end

  def succeed(io_dir, label)
    write_output(io_dir, OffloadEnv.output)
    0
  rescue JSON::GeneratorError, EncodingError => e
    message = "#{label}: output params can not be written as JSON: #{e.message}"
    warn message
    fail_with(io_dir, { 'class' => e.class.name, 'message' => message, 'backtrace' => [] })
  end

  def fail_with(io_dir, error, code = EXIT_FAILED)
    write_output(io_dir, OffloadEnv.output(error))
    code
  end

  # Write output.json atomically: a reader never sees half of it.
  def write_output(io_dir, data)
    text = JSON.generate(data)
    path = File.join(io_dir, OUTPUT_FILE)
    tmp = "#{path}.#{Process.pid}.tmp"
    File.open(tmp, 'w:UTF-8') do |f|
      f.write(text)
      f.flush
      f.fsync
    end
    File.rename(tmp, path)
  end
end

exit(OffloadRunner.main(ARGV)) if $PROGRAM_NAME == __FILE__
